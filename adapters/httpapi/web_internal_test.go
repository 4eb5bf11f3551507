package httpapi

import (
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWebAssets_PinnedLicensedAndSmall: the vendored Swagger UI is the
// version scripts/vendor.sh pins, ships with its licence, and everything
// the binary embeds for the browser stays small.
func TestWebAssets_PinnedLicensedAndSmall(t *testing.T) {
	t.Parallel()
	script, err := os.ReadFile("../../scripts/vendor.sh")
	require.NoError(t, err)
	pin := regexp.MustCompile(`(?m)^SWAGGER_UI_DIST=(\S+)$`).FindSubmatch(script)
	require.NotNil(t, pin, "scripts/vendor.sh pins SWAGGER_UI_DIST")
	version, err := fs.ReadFile(webFS, "web/vendor/swagger-ui-dist/VERSION")
	require.NoError(t, err)
	assert.Equal(t, string(pin[1]), strings.TrimSpace(string(version)), "run task vendor after changing the pin")
	licence, err := fs.ReadFile(webFS, "web/vendor/swagger-ui-dist/LICENSE")
	require.NoError(t, err)
	assert.Contains(t, string(licence), "Apache License")

	var total int64
	require.NoError(t, fs.WalkDir(webFS, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		total += info.Size()
		return err
	}))
	assert.Less(t, total, int64(4<<20), "the browser assets grow the binary by their size")
}
