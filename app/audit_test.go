package app

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"healthrecord/domain"
)

// TestAdminSetUser_CannotDeactivateSelf: an admin who deactivated itself
// would lock the service out of its only console; another admin may.
func TestAdminSetUser_CannotDeactivateSelf(t *testing.T) {
	e := newEnv(t, Config{})
	c := newCast(t, e)
	_, err := e.app.AdminSetUser(ctx, actorOf(c.admin), c.admin.ID, OpDeactivate)
	requireCode(t, err, domain.EInvalid, domain.MsgNoSelfDeactivate)
	u, err := e.app.Me(ctx, actorOf(c.admin))
	require.NoError(t, err)
	assert.True(t, u.Active)

	other := e.mustUser(t, "root2", domain.RoleAdmin)
	u, err = e.app.AdminSetUser(ctx, actorOf(other), c.admin.ID, OpDeactivate)
	require.NoError(t, err)
	assert.False(t, u.Active)
}
