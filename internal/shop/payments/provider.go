package payments

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/shop/commerce"
)

// Provider is the payment provider: the bank side of a card payment. Every call
// carries a key that makes it idempotent at the provider, as real providers' APIs
// do, so a retried call never holds or takes money twice.
type Provider interface {
	// Authorize holds an amount on a card. A decline is an answer (Approved false,
	// with a reason), a failure is an error wrapping ErrProviderFailed.
	Authorize(ctx context.Context, c Charge) (Authorization, error)
	// Capture takes an authorized amount.
	Capture(ctx context.Context, ref string, amount int64) error
	// Void releases an authorization.
	Void(ctx context.Context, ref string) error
	// Refund returns a captured amount.
	Refund(ctx context.Context, ref string, amount int64) error
}

// Charge is an authorization request.
type Charge struct {
	// Key identifies the authorization across retries.
	Key        string
	CardNumber string
	Amount     int64
	Currency   string
}

// Authorization is the provider's answer to Authorize.
type Authorization struct {
	// Ref is the provider's reference for the authorization.
	Ref           string
	Approved      bool
	DeclineReason string
}

// ErrProviderFailed is a provider that did not answer usefully (timeout, error):
// nothing was held, and the call may be tried again with the same key.
var ErrProviderFailed = errors.New("payment provider failed")

// SimulatorSettings shape the simulated provider (services.payments.settings).
type SimulatorSettings struct {
	// DeclineRate is the share of other cards' authorizations declined [0.05].
	DeclineRate float64 `yaml:"decline_rate"`
	// FailureRate is the share of calls that fail, to be retried [0].
	FailureRate float64 `yaml:"failure_rate"`
	// Latency is the mean time a call takes; each call takes between half and one
	// and a half times it [5ms].
	Latency config.Duration `yaml:"latency"`
}

// DefaultSimulatorSettings are the settings used where none are configured.
func DefaultSimulatorSettings() SimulatorSettings {
	return SimulatorSettings{DeclineRate: 0.05, Latency: config.Duration(5 * time.Millisecond)}
}

// Settings decodes and checks the payments service's settings.
func Settings(s config.Settings) (SimulatorSettings, error) {
	out := DefaultSimulatorSettings()
	if err := s.Decode(&out); err != nil {
		return out, err
	}
	for key, rate := range map[string]float64{"decline_rate": out.DeclineRate, "failure_rate": out.FailureRate} {
		if rate < 0 || rate > 1 {
			return out, s.Invalid(key, fmt.Sprintf("want a share from 0 to 1, got %v", rate))
		}
	}
	if out.Latency < 0 || out.Latency.Std() > 10*time.Second {
		return out, s.Invalid("latency", "want 0 to 10s")
	}
	return out, nil
}

// Simulator is a Provider that behaves like a card network without one: it takes
// time, declines a share of cards and fails a share of calls. Whether a card is
// declined is a function of the authorization's key, so a retried authorization
// gets the same answer even from a restarted process; failures are random, so a
// retry can succeed.
type Simulator struct {
	settings SimulatorSettings
}

var _ Provider = (*Simulator)(nil)

// NewSimulator returns a simulated provider.
func NewSimulator(s SimulatorSettings) *Simulator { return &Simulator{settings: s} }

// Authorize implements Provider.
func (s *Simulator) Authorize(ctx context.Context, c Charge) (Authorization, error) {
	if err := s.call(ctx, c.CardNumber == commerce.CardProviderFails); err != nil {
		return Authorization{}, err
	}
	sum := sha256.Sum256([]byte(c.Key))
	auth := Authorization{Ref: fmt.Sprintf("sim_%x", sum[:12]), Approved: true}
	switch c.CardNumber {
	case commerce.CardApproved:
	case commerce.CardDeclined:
		auth.Approved, auth.DeclineReason = false, "card declined"
	case commerce.CardInsufficientFunds:
		auth.Approved, auth.DeclineReason = false, "insufficient funds"
	default:
		// The key's hash, not a random draw: the same key declines the same way.
		if float64(binary.BigEndian.Uint64(sum[12:20]))/(1<<64) < s.settings.DeclineRate {
			auth.Approved, auth.DeclineReason = false, "card declined by issuer"
		}
	}
	return auth, nil
}

// Capture implements Provider.
func (s *Simulator) Capture(ctx context.Context, _ string, _ int64) error { return s.call(ctx, false) }

// Void implements Provider.
func (s *Simulator) Void(ctx context.Context, _ string) error { return s.call(ctx, false) }

// Refund implements Provider.
func (s *Simulator) Refund(ctx context.Context, _ string, _ int64) error { return s.call(ctx, false) }

// call spends a call's latency and decides whether it fails.
func (s *Simulator) call(ctx context.Context, fail bool) error {
	if l := s.settings.Latency.Std(); l > 0 {
		d := l/2 + rand.N(l+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", ErrProviderFailed, ctx.Err())
		case <-t.C:
		}
	}
	if fail || (s.settings.FailureRate > 0 && rand.Float64() < s.settings.FailureRate) {
		return fmt.Errorf("%w: processing error", ErrProviderFailed)
	}
	return nil
}
