package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/keyrotor/keyrotor"
)

// activityWriter turns the stack's process output (lines of
// "[label] text", as startProcess copies them) into Options.Activity's
// one-line summaries, and passes every line on to next (Options.Logs) when
// that is set. It reads only the functions' JSON log lines, and of those
// only named fields (secret, step, outcome, key id, result, counts, error
// kind and message), so that nothing else a function logs can reach the
// summary: the functions never log a key, and this keeps it so if one ever
// logged a new field.
type activityWriter struct {
	out, next io.Writer

	mu      sync.Mutex
	partial []byte
}

func (w *activityWriter) Write(b []byte) (int, error) {
	if w.next != nil {
		if _, err := w.next.Write(b); err != nil {
			return 0, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		if line, ok := ActivityLine(w.partial[:i]); ok {
			_, _ = io.WriteString(w.out, line+"\n")
		}
		w.partial = w.partial[i+1:]
	}
	return len(b), nil
}

// maxErrorLen bounds the error message of a failure's summary line.
const maxErrorLen = 300

// ActivityLine returns the summary `keyrotor local` prints for one line of
// a function's output ("[gateway] {json}"), and false for every other line:
//
//	12:00:01 rotation demo/gateway: finishSecret done
//	12:00:01 rotation demo/gateway: revocation of key_x scheduled for 12:05:01
//	12:05:02 revoker: revoked key_x of demo/gateway
//	12:06:00 auditor: 2 secrets, 0 problems
//
// Functions of another region than the first have a "region/name" label;
// their lines name the region.
func ActivityLine(line []byte) (string, bool) {
	label, rest, ok := bytes.Cut(line, []byte("] "))
	if !ok || !bytes.HasPrefix(label, []byte("[")) || !bytes.HasPrefix(rest, []byte(`{"time"`)) {
		return "", false
	}
	var l struct {
		Time             time.Time `json:"time"`
		Msg              string    `json:"msg"`
		SecretID         string    `json:"secret_id"`
		Step             string    `json:"step"`
		Outcome          string    `json:"outcome"`
		Kind             string    `json:"kind"`
		Error            string    `json:"error"`
		KeyID            string    `json:"key_id"`
		NotBefore        string    `json:"not_before"`
		Emergency        bool      `json:"emergency"`
		Result           string    `json:"result"`
		Secrets          int       `json:"secrets"`
		Stuck            int       `json:"stuck"`
		RotationDisabled int       `json:"rotation_disabled"`
		Overdue          int       `json:"overdue"`
	}
	if json.Unmarshal(rest, &l) != nil {
		return "", false
	}
	region, revoker, auditor := "", "revoker", "auditor"
	if r, _, ok := strings.Cut(string(label[1:]), "/"); ok {
		region, revoker, auditor = r+" ", "revoker "+r, "auditor "+r
	}
	secret := l.SecretID
	if id, err := keyrotor.ParseARN(secret); err == nil {
		secret = id.Name
	}
	var what string
	switch l.Msg {
	case "step done":
		what = fmt.Sprintf("rotation %s%s: %s %s", region, secret, l.Step, strings.ReplaceAll(l.Outcome, "_", " "))
	case "step failed":
		what = fmt.Sprintf("rotation %s%s: %s FAILED (%s): %s", region, secret, l.Step, l.Kind, clip(l.Error))
	case "scheduled revocation of the old key":
		when := l.NotBefore
		if t, err := time.Parse(time.RFC3339, l.NotBefore); err == nil {
			when = t.Local().Format(time.TimeOnly)
		}
		emergency := ""
		if l.Emergency {
			emergency = " (emergency)"
		}
		what = fmt.Sprintf("rotation %s%s: revocation of %s scheduled for %s%s", region, secret, l.KeyID, when, emergency)
	case "revocation message handled":
		switch l.Result {
		case "revoked":
			what = fmt.Sprintf("%s: revoked %s of %s", revoker, l.KeyID, secret)
		default:
			what = fmt.Sprintf("%s: %s of %s: %s", revoker, l.KeyID, secret, l.Result)
		}
	case "revocation failed; the message returns after the visibility timeout":
		what = fmt.Sprintf("%s: revoking %s of %s FAILED (%s), tried again later: %s", revoker, l.KeyID, secret, l.Kind, clip(l.Error))
	case "audit done":
		problems := l.Stuck + l.RotationDisabled + l.Overdue
		what = fmt.Sprintf("%s: %s, %s", auditor, plural(l.Secrets, "secret"), plural(problems, "problem"))
	default:
		return "", false
	}
	return l.Time.Local().Format(time.TimeOnly) + " " + what, true
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func clip(s string) string {
	if r := []rune(s); len(r) > maxErrorLen {
		return string(r[:maxErrorLen-1]) + "…"
	}
	return s
}
