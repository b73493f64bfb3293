package local

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// BenchOptions configure RunBench.
type BenchOptions struct {
	// RepoRoot is the repository to build from (default: found above the
	// working directory).
	RepoRoot string
	// Samples is the number of cold starts and rotations measured per
	// function (default 5); the table shows medians.
	Samples int
	// Logs receives every process's output (nil: kept in memory).
	Logs io.Writer
	// NoFunctions skips the per-function figures (start-up, memory, size).
	NoFunctions bool
	// FleetSecrets is the number of secrets of the fleet figure (0: no
	// fleet figure; `keyrotor bench` asks for DefaultFleetSecrets),
	// FleetIAMSecrets how
	// many of them are IAM secrets (default DefaultFleetIAMSecrets; the
	// others are gateway secrets), Concurrency the emulators per function
	// (default DefaultFleetConcurrency) and InFlight the rotations in
	// flight at once (default DefaultFleetInFlight).
	FleetSecrets, FleetIAMSecrets, Concurrency, InFlight int
	// AuditSecrets is the number of managed secrets the auditor and
	// `keyrotor status` run over on moto (0: no audit figure; `keyrotor
	// bench` asks for DefaultAuditSecrets).
	AuditSecrets int
}

func (o *BenchOptions) defaults() {
	if o.Samples <= 0 {
		o.Samples = 5
	}
	if o.FleetIAMSecrets <= 0 {
		o.FleetIAMSecrets = DefaultFleetIAMSecrets
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultFleetConcurrency
	}
	if o.InFlight <= 0 {
		o.InFlight = DefaultFleetInFlight
	}
}

// Targets of the functions (README).
const (
	TargetStartup     = 30 * time.Millisecond
	TargetRSSBytes    = 25 << 20
	TargetBinaryBytes = 12 << 20
	TargetSMCalls     = 10
)

// BenchResult is what RunBench measured for one rotation function.
type BenchResult struct {
	Function string
	// ColdStart is the emulator's Init Duration plus the Duration of the
	// first invoke of a fresh process: from the bootstrap's start to its
	// first handled invoke (median).
	ColdStart time.Duration
	// WarmInvoke is the Duration of a second invoke of the same event in
	// the same process (median): ColdStart minus WarmInvoke is what starting
	// the process and initialising the function cost.
	WarmInvoke time.Duration
	// Bootstrap is the time from starting the bootstrap alone (no emulator,
	// a minimal Runtime API) to its answer to the same first invoke
	// (median).
	Bootstrap time.Duration
	// ColdStartWall is the same measured from outside: from starting the
	// emulator to the first invoke's response (median).
	ColdStartWall time.Duration
	// PeakRSS is the bootstrap's peak resident set (VmHWM) after the
	// rotations.
	PeakRSS int64
	// BinarySize is the size of the stripped bootstrap.
	BinarySize int64
	// Rotation is the wall time of RotateSecret, four steps through moto and
	// the emulator (median).
	Rotation time.Duration
	// SMCalls is the rotation function's Secrets Manager calls per rotation
	// (the largest of the samples), and SMCallsByOp one sample's breakdown.
	SMCalls     int
	SMCallsByOp APICalls
	// RevokerSMCalls is the revoker's Secrets Manager calls per revocation
	// (the largest of the samples).
	RevokerSMCalls int
}

// RunBench measures and prints, on w: for the gateway and iam functions
// (unless NoFunctions) cold start, peak RSS, binary size, rotation wall time
// and Secrets Manager calls per rotation, beside the targets (functionBench);
// the fleet figure (runFleetBench); and the auditor's and `keyrotor
// status`'s calls and wall time over many secrets on moto (runAuditBench).
// It returns the per-function results.
func RunBench(ctx context.Context, w io.Writer, opts BenchOptions) ([]BenchResult, error) {
	opts.defaults()
	var results []BenchResult
	if !opts.NoFunctions {
		var err error
		if results, err = functionBench(ctx, w, opts); err != nil {
			return nil, err
		}
	}
	if opts.FleetSecrets > 0 {
		r, err := runFleetBench(ctx, w, opts)
		if err != nil {
			return results, err
		}
		printFleet(w, r)
		if len(r.Failed) > 0 {
			return results, fmt.Errorf("fleet: %d of %d emergency rotations did not end with the old key dead", len(r.Failed), r.Secrets)
		}
	}
	if opts.AuditSecrets > 0 {
		r, err := runAuditBench(ctx, w, opts.AuditSecrets, opts.Logs)
		if err != nil {
			return results, err
		}
		printAudit(w, r)
	}
	return results, nil
}

// functionBench starts the stack with the gateway, iam and revoker
// functions and measures, for gateway and iam: cold start, peak RSS, binary
// size, rotation wall time and Secrets Manager calls per rotation. It
// prints a table with the targets on w and returns the results.
func functionBench(ctx context.Context, w io.Writer, opts BenchOptions) (_ []BenchResult, err error) {
	fmt.Fprintf(w, "keyrotor bench: building gateway, iam and revoker for %s/%s and starting the local stack...\n", runtime.GOOS, runtime.GOARCH)
	s, err := Start(ctx, Options{
		RepoRoot: opts.RepoRoot, Functions: []string{"gateway", "iam", "revoker"}, NoDemoSecrets: true,
		GracePeriod: time.Second, Logs: opts.Logs,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := s.Stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	gw, err := s.CreateGatewaySecret(ctx, "bench/gateway", time.Second)
	if err != nil {
		return nil, err
	}
	im, err := s.CreateIAMSecret(ctx, "bench/iam", "keyrotor-bench", time.Second)
	if err != nil {
		return nil, err
	}
	var results []BenchResult
	for _, b := range []struct{ fn, secret string }{{"gateway", gw.Name}, {"iam", im.Name}} {
		fmt.Fprintf(w, "measuring %s: %d cold starts, %d rotations...\n", b.fn, opts.Samples, opts.Samples)
		r, err := s.bench(ctx, b.fn, b.secret, opts.Samples)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	printBench(w, results, opts.Samples)
	return results, nil
}

func (s *Stack) bench(ctx context.Context, name, secret string, samples int) (BenchResult, error) {
	f := s.Function(name)
	r := BenchResult{Function: name}
	st, err := os.Stat(f.Bootstrap)
	if err != nil {
		return r, fmt.Errorf("bench %s: %w", name, err)
	}
	r.BinarySize = st.Size()

	// Cold starts: a fresh emulator and bootstrap each time, invoked with
	// testSecret of the current version (the AWS checks, then nothing to do).
	cur, err := s.ReadKey(ctx, secret, "AWSCURRENT")
	if err != nil {
		return r, err
	}
	event := fmt.Sprintf(`{"Step":"testSecret","SecretId":%q,"ClientRequestToken":%q}`, secret, cur.VersionID)
	var cold, warm, wall []time.Duration
	for i := 0; i < samples; i++ {
		c, w, wl, err := s.coldStart(ctx, name, []byte(event))
		if err != nil {
			return r, err
		}
		cold, warm, wall = append(cold, c), append(warm, w), append(wall, wl)
	}
	r.ColdStart, r.WarmInvoke, r.ColdStartWall = median(cold), median(warm), median(wall)
	var alone []time.Duration
	for i := 0; i < samples; i++ {
		d, err := bootstrapStartup(ctx, f.Bootstrap, s.primary().functionEnv(f.Endpoint), []byte(event))
		if err != nil {
			return r, fmt.Errorf("bench %s: %w", name, err)
		}
		alone = append(alone, d)
	}
	r.Bootstrap = median(alone)

	// Rotations through moto, one at a time, each after the previous
	// revocation (IAM allows two keys per user).
	var rot []time.Duration
	for i := 0; i < samples; i++ {
		old, err := s.ReadKey(ctx, secret, "AWSCURRENT")
		if err != nil {
			return r, err
		}
		before := s.FunctionAPICalls(name)
		revBefore := s.FunctionAPICalls("revoker")
		start := time.Now()
		if _, err := s.Rotate(ctx, secret); err != nil {
			return r, err
		}
		rot = append(rot, time.Since(start))
		calls := s.FunctionAPICalls(name).Sub(before)
		if n := calls.Service("secretsmanager"); n > r.SMCalls {
			r.SMCalls, r.SMCallsByOp = n, calls
		}
		if err := s.waitGone(ctx, name, secret, old.KeyID); err != nil {
			return r, err
		}
		if n := s.FunctionAPICalls("revoker").Sub(revBefore).Service("secretsmanager"); n > r.RevokerSMCalls {
			r.RevokerSMCalls = n
		}
	}
	r.Rotation = median(rot)
	if r.PeakRSS, err = peakRSS(f.PID()); err != nil {
		return r, fmt.Errorf("bench %s: %w", name, err)
	}
	return r, nil
}

// waitGone waits until the old key of secret is revoked at its vendor and
// the revoker's poller has settled.
func (s *Stack) waitGone(ctx context.Context, name, secret, keyID string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		gone := true
		switch name {
		case "gateway":
			for _, k := range s.LiveKeys(secret) {
				gone = gone && k.ID != keyID
			}
		case "iam":
			ids, err := s.AccessKeyIDs(ctx, "keyrotor-bench")
			if err != nil {
				return err
			}
			for _, id := range ids {
				gone = gone && id != keyID
			}
		}
		st := s.Revocations.Stats()
		if gone && st.Deleted+st.Failed >= st.Received {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench %s: the old key %s of %s was not revoked: %w", name, keyID, secret, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var reportRE = regexp.MustCompile(`REPORT RequestId: \S+\s+(?:Init Duration: ([0-9.]+) ms\s+)?Duration: ([0-9.]+) ms`)

// coldStart starts a fresh emulator running function name's bootstrap,
// invokes it twice with event and stops it. It returns the emulator's Init
// Duration plus Duration of the first invoke (the emulator starts the
// bootstrap when the first invoke arrives, so that covers the process start,
// the function's initialisation and the handler), the Duration of the
// second invoke, and the wall time from starting the emulator to the first
// response.
func (s *Stack) coldStart(ctx context.Context, name string, event []byte) (cold, warm, wall time.Duration, err error) {
	start := time.Now()
	f, err := startFunction(name, name, s.primary().Name, s.paths[name], s.rie, 1, s.primary().functionEnv(s.Function(name).Endpoint), nil)
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() { _ = f.stop(3 * time.Second) }()
	if _, err := f.Invoke(ctx, event); err != nil {
		return 0, 0, 0, fmt.Errorf("bench %s: first invoke: %w", name, err)
	}
	wall = time.Since(start)
	if _, err := f.Invoke(ctx, event); err != nil {
		return 0, 0, 0, fmt.Errorf("bench %s: second invoke: %w", name, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m := reportRE.FindAllStringSubmatch(f.Logs(), -1); len(m) == 2 {
			init, _ := strconv.ParseFloat(m[0][1], 64)
			first, _ := strconv.ParseFloat(m[0][2], 64)
			second, _ := strconv.ParseFloat(m[1][2], 64)
			return ms(init + first), ms(second), wall, nil
		}
		if time.Now().After(deadline) {
			return 0, 0, 0, fmt.Errorf("bench %s: the emulator did not print two REPORT lines", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// peakRSS returns the VmHWM of the bootstrap process under the emulator
// whose pid is riePID.
func peakRSS(riePID int) (int64, error) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		status, err := readStatus(filepath.Join(d, "status"))
		if err != nil || status["PPid"] != strconv.Itoa(riePID) || status["Name"] != "bootstrap" {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(status["VmHWM"], " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmHWM of %s: %w", d, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no bootstrap process under the emulator %d", riePID)
}

func readStatus(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func printBench(w io.Writer, rs []BenchResult, samples int) {
	fmt.Fprintf(w, "\nkeyrotor bench: functions built for %s/%s (stripped, -tags lambda.norpc), %d CPUs, medians of %d\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), samples)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "\t"
	for _, r := range rs {
		header += r.Function + "\t"
	}
	fmt.Fprintln(tw, header+"target\t")
	row := func(label string, target string, cell func(BenchResult) (string, bool)) {
		line := label + "\t"
		for _, r := range rs {
			v, ok := cell(r)
			if !ok {
				v += " (over)"
			}
			line += v + "\t"
		}
		fmt.Fprintln(tw, line+target+"\t")
	}
	msec := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
	row("start-up: process start to first handled invoke", "≤ 30 ms", func(r BenchResult) (string, bool) { return msec(r.Bootstrap), r.Bootstrap <= TargetStartup })
	row("  under the emulator (its Init + Duration)", "", func(r BenchResult) (string, bool) { return msec(r.ColdStart), true })
	row("  the same invoke, warm", "", func(r BenchResult) (string, bool) { return msec(r.WarmInvoke), true })
	row("  from outside (emulator start to response)", "", func(r BenchResult) (string, bool) { return msec(r.ColdStartWall), true })
	row("peak RSS of the bootstrap (VmHWM)", "≤ 25 MB", func(r BenchResult) (string, bool) { return mb(r.PeakRSS), r.PeakRSS <= TargetRSSBytes })
	row("binary size (stripped)", "≤ 12 MB", func(r BenchResult) (string, bool) { return mb(r.BinarySize), r.BinarySize <= TargetBinaryBytes })
	row("four-step rotation, wall (moto + emulator)", "", func(r BenchResult) (string, bool) { return msec(r.Rotation), true })
	row("Secrets Manager calls per rotation", "≤ 10", func(r BenchResult) (string, bool) { return strconv.Itoa(r.SMCalls), r.SMCalls <= TargetSMCalls })
	row("  revoker's calls per revocation", "", func(r BenchResult) (string, bool) { return strconv.Itoa(r.RevokerSMCalls), true })
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, r := range rs {
		fmt.Fprintf(w, "%s: Secrets Manager calls of one rotation: %s\n", r.Function, r.SMCallsByOp.onlyService("secretsmanager"))
	}
	fmt.Fprintln(w, "\nStart-up: the bootstrap started alone against a minimal Lambda Runtime API on 127.0.0.1, from")
	fmt.Fprintln(w, "exec to its answer to the first invoke, a testSecret of the current version (the AWS checks:")
	fmt.Fprintln(w, "one DescribeSecret to moto, then nothing to do). Under the emulator: what it reports for the")
	fmt.Fprintln(w, "first invoke of a fresh process (it starts the bootstrap when that invoke arrives); warm: the")
	fmt.Fprintln(w, "same invoke again in that process. Rotation: RotateSecret, four invokes through moto.")
}
