//go:build !race

package password

// raceEnabled skips the heap measurement: the race detector changes both speed and memory.
const raceEnabled = false
