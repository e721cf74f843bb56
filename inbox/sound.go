//go:build !switchyard_broken_inbox

package inbox

// forgetsIDs is false: the inbox records every event id it handles (see broken.go
// for the build that does not).
const forgetsIDs = false
