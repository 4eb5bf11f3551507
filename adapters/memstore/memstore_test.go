package memstore_test

import (
	"testing"

	"healthrecord/adapters/memstore"
	"healthrecord/ports"
	"healthrecord/ports/storetest"
)

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) ports.Store { return memstore.New(memstore.Options{}) })
}
