package users

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/switchyard/switchyard/problem"
)

// Argon2id parameters: OWASP's password storage recommendation (m=19 MiB, t=2, p=1).
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// Password length bounds, in characters. The upper bound keeps hashing cost bounded.
const (
	minPasswordLen = 12
	maxPasswordLen = 128
)

// hasher hashes and verifies passwords with argon2id, at most a fixed number at a
// time: each hash takes 19 MiB and tens of milliseconds of CPU, so an unbounded
// burst of logins would take the process down.
type hasher struct {
	slots chan struct{}
	wait  time.Duration
	dummy string
}

func newHasher(concurrency int, wait time.Duration) *hasher {
	h := &hasher{slots: make(chan struct{}, concurrency), wait: wait}
	// A hash to verify against when the account does not exist, so that "no such
	// email" and "wrong password" take the same time.
	h.dummy = encodeHash(make([]byte, argonSaltLen), argon2.IDKey([]byte("dummy"), make([]byte, argonSaltLen), argonTime, argonMemoryKiB, argonThreads, argonKeyLen))
	return h
}

var errBusy = &problem.Error{Kind: problem.Unavailable, Detail: "too many sign-ins at once; try again shortly", RetryAfter: time.Second}

func (h *hasher) acquire(ctx context.Context) (func(), error) {
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots }, nil
	case <-t.C:
		return nil, errBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Hash returns the PHC-format argon2id hash of password.
func (h *hasher) Hash(ctx context.Context, password string) (string, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	salt := make([]byte, argonSaltLen)
	_, _ = rand.Read(salt)
	return encodeHash(salt, argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)), nil
}

// Verify reports whether password matches encoded. An empty encoded (no such
// account) is verified against a dummy hash and always fails, in the same time.
func (h *hasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	known := encoded != ""
	if !known {
		encoded = h.dummy
	}
	m, t, p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, fmt.Errorf("stored password hash: %w", err)
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return known && subtle.ConstantTimeCompare(got, want) == 1, nil
}

func encodeHash(salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func decodeHash(s string) (m, t uint32, p uint8, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return 0, 0, 0, nil, nil, errors.New("not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return 0, 0, 0, nil, nil, errors.New("unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return 0, 0, 0, nil, nil, errors.New("malformed argon2 parameters")
	}
	if salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return 0, 0, 0, nil, nil, errors.New("malformed salt")
	}
	if key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil {
		return 0, 0, 0, nil, nil, errors.New("malformed key")
	}
	return m, t, p, salt, key, nil
}

// checkPassword enforces the password policy: 12 to 128 characters, not one of the
// passwords attackers try first, not built from the email address, not one
// repeated character.
func checkPassword(password, email string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return problem.InvalidField("password", "must be valid UTF-8")
	case n < minPasswordLen:
		return problem.InvalidField("password", "use at least %d characters", minPasswordLen)
	case n > maxPasswordLen:
		return problem.InvalidField("password", "use at most %d characters", maxPasswordLen)
	case strings.IndexFunc(password, unicode.IsControl) >= 0:
		return problem.InvalidField("password", "must not contain control characters")
	}
	lower := strings.ToLower(password)
	if commonPasswords[lower] {
		return problem.InvalidField("password", "is one of the most commonly used passwords; choose another")
	}
	if local, _, _ := strings.Cut(email, "@"); len(local) >= 4 && strings.Contains(lower, strings.ToLower(local)) {
		return problem.InvalidField("password", "must not contain your email address")
	}
	if strings.Count(password, password[:1]) == len(password) {
		return problem.InvalidField("password", "must not be one character repeated")
	}
	return nil
}

// commonPasswords are frequently breached passwords that satisfy the length rule;
// shorter ones are already refused by it. A deployment that wants the full
// breached-password check should add a k-anonymity lookup in front of this.
var commonPasswords = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range strings.Fields(`
		123456789012 1234567890123 12345678901234 123456123456 111111111111 000000000000
		qwertyuiopas qwertyuiop12 qwertyuiop123 1qaz2wsx3edc qazwsxedcrfv 1q2w3e4r5t6y
		password1234 password12345 password123! passwordpassword iloveyou1234 letmein12345
		welcome12345 administrator adminadmin123 abc123abc123 abcdefghijkl trustno1trustno1
		football1234 baseball1234 superman1234 sunshine1234 princess1234 dragon123456
		monkey123456 starwars1234 whatever1234 changeme1234 p@ssw0rd1234 passw0rd1234
		correcthorsebatterystaple`) {
		m[p] = true
	}
	return m
}()
