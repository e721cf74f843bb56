package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/broker"
)

func TestEmbeddedBrokerPersistsAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b, err := broker.Start(broker.Config{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(b.Addr(), ":4222") {
		t.Fatal("embedded broker took port 4222")
	}
	nc, err := nats.Connect(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.x", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	b.Shutdown()

	b2, err := broker.Start(broker.Config{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Shutdown()
	nc2, err := nats.Connect(b2.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	s, err := js2.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, "t.x")
	if err != nil || string(msg.Data) != "kept" {
		t.Fatalf("message lost across restart: %v", err)
	}
}

func TestClientsWithoutTheTokenAreRefused(t *testing.T) {
	t.Parallel()
	b, err := broker.Start(broker.Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	if _, err := nats.Connect("nats://"+b.Addr(), nats.Timeout(2*time.Second)); err == nil {
		t.Fatal("connected without the token")
	}
}

func TestPort4222IsRefused(t *testing.T) {
	t.Parallel()
	if _, err := broker.Start(broker.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:4222"}); err == nil {
		t.Fatal("started on 4222")
	}
}
