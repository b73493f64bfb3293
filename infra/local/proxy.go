package local

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// freePort returns a TCP port that was free on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// apiCounter is a reverse proxy in front of moto that counts the AWS API
// calls going through it, by operation (for example
// "secretsmanager.GetSecretValue"). The functions reach moto through it.
type apiCounter struct {
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	calls map[string]int
}

func newAPICounter(target string) (*apiCounter, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("moto URL %q: %w", target, err)
	}
	return &apiCounter{proxy: httputil.NewSingleHostReverseProxy(u), calls: map[string]int{}}, nil
}

func (c *apiCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.calls[operation(r)]++
	c.mu.Unlock()
	c.proxy.ServeHTTP(w, r)
}

// snapshot returns a copy of the counts.
func (c *apiCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.calls))
	for k, v := range c.calls {
		out[k] = v
	}
	return out
}

// operation names an AWS call from its X-Amz-Target (JSON protocols, as
// "secretsmanager.GetSecretValue") or, for the query protocol, from the
// signing service and the Action parameter.
func operation(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		svc, op, ok := strings.Cut(t, ".")
		if ok {
			switch {
			case strings.HasPrefix(svc, "secretsmanager"):
				svc = "secretsmanager"
			case strings.HasPrefix(svc, "AmazonSQS"):
				svc = "sqs"
			}
			return svc + "." + op
		}
		return t
	}
	svc := "unknown"
	if _, rest, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		if parts := strings.Split(rest, "/"); len(parts) > 3 {
			svc = parts[3]
		}
	}
	if a := r.URL.Query().Get("Action"); a != "" {
		return svc + "." + a
	}
	return svc + "." + r.Method + " " + r.URL.Path
}

// APICalls is a count of AWS API calls by operation, such as
// "secretsmanager.GetSecretValue".
type APICalls map[string]int

// Sub returns the calls made since before.
func (a APICalls) Sub(before APICalls) APICalls {
	out := APICalls{}
	for k, v := range a {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Service returns the total of one service's calls ("secretsmanager").
func (a APICalls) Service(svc string) int {
	n := 0
	for k, v := range a {
		if strings.HasPrefix(k, svc+".") {
			n += v
		}
	}
	return n
}

// String lists the calls in name order.
func (a APICalls) String() string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", strings.TrimPrefix(k, "secretsmanager."), a[k])
	}
	return b.String()
}

// TCPProxy forwards TCP connections from a loopback port to a target and can
// be switched off, which closes the connections it holds and refuses new
// ones: an outage of the target as its clients see it.
type TCPProxy struct {
	Addr string // 127.0.0.1:PORT
	URL  string // http://Addr

	target string
	l      net.Listener
	off    atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewTCPProxy listens on 127.0.0.1 and a free port and forwards to target
// (host:port, or an http:// URL).
func NewTCPProxy(target string) (*TCPProxy, error) {
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		target = u.Host
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("TCP proxy to %s: %w", target, err)
	}
	p := &TCPProxy{Addr: l.Addr().String(), URL: "http://" + l.Addr().String(), target: target, l: l, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// SetEnabled switches the proxy on or off. Off closes every open connection.
func (p *TCPProxy) SetEnabled(on bool) {
	p.off.Store(!on)
	if on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

// Close stops the proxy and closes its connections.
func (p *TCPProxy) Close() error {
	err := p.l.Close()
	p.SetEnabled(false)
	p.wg.Wait()
	return err
}

func (p *TCPProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		if p.off.Load() {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.pipe(c)
	}
}

func (p *TCPProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	_ = c.Close()
	_ = up.Close()
	<-done
	p.untrack(c, up)
}

func (p *TCPProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.off.Load() {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *TCPProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// onlyService returns the calls of one service ("secretsmanager").
func (a APICalls) onlyService(svc string) APICalls {
	out := APICalls{}
	for k, v := range a {
		if strings.HasPrefix(k, svc+".") {
			out[k] = v
		}
	}
	return out
}
