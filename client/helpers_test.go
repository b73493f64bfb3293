package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/client"
	"github.com/keyrotor/keyrotor/internal/testenv"
)

// testClock is an injected clock that only moves when told to.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// countingSM counts the GetSecretValue calls that reach Secrets Manager.
type countingSM struct {
	client.SecretsManagerAPI
	calls atomic.Int64
}

func (s *countingSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	s.calls.Add(1)
	return s.SecretsManagerAPI.GetSecretValue(ctx, in, optFns...)
}

// events records what a Client reports.
type events struct {
	mu   sync.Mutex
	list []client.Event
}

func (e *events) Record(ev client.Event) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
}

func (e *events) Count(kind client.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.list {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

func (e *events) Last(kind client.EventKind) (client.Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.list) - 1; i >= 0; i-- {
		if e.list[i].Kind == kind {
			return e.list[i], true
		}
	}
	return client.Event{}, false
}

// secretValue is a DESIGN §3 secret value.
func secretValue(t testing.TB, key, keyID string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"provider": "gateway", "key": key, "key_id": keyID, "created_at": "2026-11-25T17:00:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// createSecret creates a secret whose AWSCURRENT key is key.
func createSecret(t testing.TB, sm *secretsmanager.Client, name, key, keyID string) {
	t.Helper()
	_, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name:         aws.String(name),
		SecretString: aws.String(secretValue(t, key, keyID)),
	})
	if err != nil {
		t.Fatalf("create secret %s: %v", name, err)
	}
}

// rotateSecret stores key as a new version and moves AWSCURRENT to it the way
// the rotator's createSecret and finishSecret do; AWSPREVIOUS follows. It
// returns the new version id.
func rotateSecret(t testing.TB, sm *secretsmanager.Client, name, key, keyID, token string) string {
	t.Helper()
	ctx := context.Background()
	desc, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatalf("describe %s: %v", name, err)
	}
	var current string
	for id, stages := range desc.VersionIdsToStages {
		for _, s := range stages {
			if s == client.StageCurrent {
				current = id
			}
		}
	}
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(name),
		ClientRequestToken: aws.String(token),
		SecretString:       aws.String(secretValue(t, key, keyID)),
		VersionStages:      []string{"AWSPENDING"},
	}); err != nil {
		t.Fatalf("put pending %s: %v", name, err)
	}
	if _, err := sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(name),
		VersionStage:        aws.String(client.StageCurrent),
		MoveToVersionId:     aws.String(token),
		RemoveFromVersionId: aws.String(current),
	}); err != nil {
		t.Fatalf("move AWSCURRENT of %s: %v", name, err)
	}
	if _, err := sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(name),
		VersionStage:        aws.String("AWSPENDING"),
		RemoveFromVersionId: aws.String(token),
	}); err != nil {
		t.Fatalf("remove AWSPENDING of %s: %v", name, err)
	}
	return token
}

// motoSM returns a Secrets Manager client for moto, reached through
// endpoint when it is not empty.
func motoSM(t testing.TB, m *testenv.Moto, endpoint string) *secretsmanager.Client {
	t.Helper()
	return secretsmanager.NewFromConfig(m.Config(t), func(o *secretsmanager.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
}

// switchProxy forwards TCP connections from 127.0.0.1 to a target until it is
// switched down; then it cuts every open connection and closes new ones at
// once, as a network partition from Secrets Manager would look to the SDK.
type switchProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startSwitchProxy(t testing.TB, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.SetDown(true)
		p.wg.Wait()
	})
	return p
}

func (p *switchProxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetDown switches the proxy. Going down closes every open connection.
func (p *switchProxy) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *switchProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in, out) {
			continue
		}
		p.wg.Add(2)
		go p.pipe(out, in)
		go p.pipe(in, out)
	}
}

// track registers a connection pair, unless the proxy went down meanwhile.
func (p *switchProxy) track(in, out net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		in.Close()
		out.Close()
		return false
	}
	p.conns[in], p.conns[out] = struct{}{}, struct{}{}
	return true
}

func (p *switchProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src) // ends when either side is cut
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// isNotFound reports whether err is Secrets Manager's ResourceNotFoundException.
func isNotFound(err error) bool {
	var nf *smtypes.ResourceNotFoundException
	return errors.As(err, &nf)
}
