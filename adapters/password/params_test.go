package password

// TestParams are cheap settings for this package's tests; never for
// production. Tests elsewhere spell out their own.
var TestParams = Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
