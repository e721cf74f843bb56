//go:build !unix

package store

// lockFile is a no-op where flock is unavailable: concurrent first starts of the same
// SQLite file are then the operator's to avoid.
func lockFile(string) (func(), error) { return func() {}, nil }

// tryLockFile always succeeds where flock is unavailable.
func tryLockFile(string) (func(), bool, error) { return func() {}, true, nil }
