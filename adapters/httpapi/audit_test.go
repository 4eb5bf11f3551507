package httpapi_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdmin_CannotDeactivateSelf(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.mustAdmin(t)
	assertDetail(t, e.send(t, "POST", "/api/admin/users/"+itoa(admin.ID)+"/deactivate/", admin.Token, nil),
		400, "You cannot deactivate your own account.")
	u, err := e.db.Users().ByID(t.Context(), admin.ID)
	require.NoError(t, err)
	assert.True(t, u.Active)
	assert.Equal(t, 200, e.send(t, "GET", "/api/admin/users/", admin.Token, nil).Status, "still signed in")
}
