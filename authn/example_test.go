package authn_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/problem"
)

// Service-to-service identity: each service signs short-lived tokens with its own
// key, for one callee; the callee verifies them against the bundle of public keys
// and admits only its declared callers. (The platform makes both from
// switchyard.yaml: a callee's allowed callers are the services declaring it as a
// dependency.)
func ExampleServiceVerifier_Verify() {
	identity := func(name string) authn.Identity {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		return authn.Identity{Service: name, Key: key}
	}
	bookings, reports := identity("bookings"), identity("reports")
	bundle := authn.Bundle{"bookings": bookings.Public(), "reports": reports.Public()}
	seats := authn.NewServiceVerifier("seats", bundle, []string{"bookings"}, nil)

	token, _ := authn.NewServiceTokens(bookings, nil).Token("seats")
	caller, err := seats.Verify(token)
	fmt.Println(caller, err)

	other, _ := authn.NewServiceTokens(reports, nil).Token("seats")
	_, err = seats.Verify(other)
	fmt.Println(problem.KindOf(err))

	elsewhere, _ := authn.NewServiceTokens(bookings, nil).Token("tickets") // meant for another callee
	_, err = seats.Verify(elsewhere)
	fmt.Println(problem.KindOf(err))
	// Output:
	// bookings <nil>
	// forbidden
	// unauthenticated
}
