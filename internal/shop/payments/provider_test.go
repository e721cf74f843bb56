package payments_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/shop/payments"
)

func TestTheSimulatorDeclinesItsShareTheSameWayEveryTime(t *testing.T) {
	t.Parallel()
	sim := payments.NewSimulator(payments.SimulatorSettings{DeclineRate: 0.2})
	declined := 0
	const n = 2000
	for i := range n {
		c := payments.Charge{Key: fmt.Sprint("key-", i), CardNumber: "4111111111111111", Amount: 100, Currency: "EUR"}
		a, err := sim.Authorize(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := payments.NewSimulator(payments.SimulatorSettings{DeclineRate: 0.2}).Authorize(context.Background(), c)
		if again != a {
			t.Fatalf("key %s: %+v, then %+v from another simulator", c.Key, a, again)
		}
		if !a.Approved {
			declined++
		}
	}
	if share := float64(declined) / n; share < 0.17 || share > 0.23 {
		t.Errorf("declined %.3f of authorizations, want about 0.2", share)
	}
}

func TestTheSimulatorFailsItsShareAndTakesItsTime(t *testing.T) {
	t.Parallel()
	sim := payments.NewSimulator(payments.SimulatorSettings{FailureRate: 0.5})
	failed := 0
	for range 1000 {
		if err := sim.Capture(context.Background(), "ref", 1); errors.Is(err, payments.ErrProviderFailed) {
			failed++
		}
	}
	if failed < 430 || failed > 570 {
		t.Errorf("%d of 1000 calls failed, want about 500", failed)
	}

	slow := payments.NewSimulator(payments.SimulatorSettings{Latency: config.Duration(time.Hour)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := slow.Void(ctx, "ref"); !errors.Is(err, payments.ErrProviderFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call past its deadline: %v, want a provider failure from the deadline", err)
	}
}

func TestSimulatorSettingsAreChecked(t *testing.T) {
	t.Parallel()
	load := func(settings string) config.Settings {
		cfg, err := config.Load("p.yaml", []byte("version: 1\nservices:\n  payments:\n    listen: 127.0.0.1:0\n    settings:\n"+settings), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Service("payments").Settings
	}
	got, err := payments.Settings(load("      decline_rate: 0.3\n      latency: 20ms\n"))
	if err != nil || got.DeclineRate != 0.3 || got.Latency.Std() != 20*time.Millisecond || got.FailureRate != 0 {
		t.Errorf("settings %+v, %v", got, err)
	}
	if _, err := payments.Settings(load("      decline_rate: 1.5\n")); err == nil || err.Error() != "p.yaml:6:7: services.payments.settings.decline_rate: want a share from 0 to 1, got 1.5" {
		t.Errorf("a rate of 1.5: %v", err)
	}
	if _, err := payments.Settings(load("      latency: 1m\n")); err == nil || err.Error() != "p.yaml:6:7: services.payments.settings.latency: want 0 to 10s" {
		t.Errorf("a latency of a minute: %v", err)
	}
}
