package local

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestActivityLines feeds the activity writer the output of a rotation, a
// revocation and an audit run as the functions print it (JSON logs, EMF,
// the emulator's lines, in writes that split lines) and checks the one line
// per outcome that `keyrotor local` prints, with nothing else: no EMF, no
// emulator noise, and no field outside the summary's (a key a function
// would log by mistake stays out).
func TestActivityLines(t *testing.T) {
	at := func(s string) string {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Local().Format(time.TimeOnly)
	}
	out := `[gateway] START RequestId: 81a5 Version: $LATEST
[gateway] {"time":"2026-12-05T20:29:25.98897732Z","level":"INFO","msg":"step done","secret_id":"demo/gateway","step":"createSecret","version":"b04b","provider":"gateway","outcome":"done"}
[gateway] {"Outcome":"done","Provider":"gateway","Step":"finishSecret","StepSucceeded":1,"_aws":{"CloudWatchMetrics":[],"Timestamp":1796502566018}}
[gateway] {"time":"2026-12-05T20:29:26.0Z","level":"INFO","msg":"scheduled revocation of the old key","secret_id":"demo/gateway","step":"finishSecret","key_id":"key_old","not_before":"2026-12-05T20:34:26Z","emergency":false}
[gateway] {"time":"2026-12-05T20:29:26.1Z","level":"INFO","msg":"step done","secret_id":"arn:aws:secretsmanager:us-east-1:123456789012:secret:demo/gateway-AbCdEf","step":"finishSecret","outcome":"already_current","api_key":"gw_leakedleakedleaked"}
[gateway] {"time":"2026-12-05T20:29:27Z","level":"ERROR","msg":"step failed","secret_id":"demo/gateway","step":"testSecret","kind":"transient","error":"gateway: GET /v1/keys: 503"}
[stack] time=2026-12-05T20:29:27Z level=INFO msg="step done"
[eu-west-1/revoker] {"time":"2026-12-05T20:34:27Z","level":"INFO","msg":"revocation message handled","message_id":"m1","secret_id":"demo/gateway","provider":"gateway","key_id":"key_old","attempt":1,"result":"revoked"}
[revoker] {"time":"2026-12-05T20:34:28Z","level":"INFO","msg":"revocation message handled","secret_id":"demo/iam","key_id":"AKIA1","result":"waiting"}
[revoker] {"time":"2026-12-05T20:34:29Z","level":"ERROR","msg":"revocation failed; the message returns after the visibility timeout","secret_id":"demo/iam","key_id":"AKIA1","kind":"permission","error":"iam: DeleteAccessKey: access denied"}
[auditor] {"time":"2026-12-05T20:35:00Z","level":"INFO","msg":"audit done","secrets":2,"stuck":0,"rotation_disabled":1,"overdue":0,"max_key_age_ratio":0.1,"metrics":9}
[gateway] {"time":"2026-12-05T20:35:01Z","level":"INFO","msg":"created a key at the vendor","secret_id":"demo/gateway","key_id":"key_new"}
`
	var got, next bytes.Buffer
	w := &activityWriter{out: &got, next: &next}
	// Write in pieces that cut lines, as a process's pipe may.
	for i := 0; i < len(out); i += 37 {
		if _, err := w.Write([]byte(out[i:min(i+37, len(out))])); err != nil {
			t.Fatal(err)
		}
	}
	want := strings.Join([]string{
		at("2026-12-05T20:29:25.98897732Z") + " rotation demo/gateway: createSecret done",
		at("2026-12-05T20:29:26.0Z") + " rotation demo/gateway: revocation of key_old scheduled for " + at("2026-12-05T20:34:26Z"),
		at("2026-12-05T20:29:26.1Z") + " rotation demo/gateway: finishSecret already current",
		at("2026-12-05T20:29:27Z") + " rotation demo/gateway: testSecret FAILED (transient): gateway: GET /v1/keys: 503",
		at("2026-12-05T20:34:27Z") + " revoker eu-west-1: revoked key_old of demo/gateway",
		at("2026-12-05T20:34:28Z") + " revoker: AKIA1 of demo/iam: waiting",
		at("2026-12-05T20:34:29Z") + " revoker: revoking AKIA1 of demo/iam FAILED (permission), tried again later: iam: DeleteAccessKey: access denied",
		at("2026-12-05T20:35:00Z") + " auditor: 2 secrets, 1 problem",
	}, "\n") + "\n"
	if got.String() != want {
		t.Errorf("activity lines:\n%s\nwant:\n%s", got.String(), want)
	}
	if strings.Contains(got.String(), "gw_leaked") {
		t.Error("a field outside the summary's reached the activity lines")
	}
	if next.String() != out {
		t.Error("the whole output did not reach Options.Logs unchanged")
	}
}

// TestActivityWithoutLogs checks that Activity alone (no -v) prints the
// summary and nothing else.
func TestActivityWithoutLogs(t *testing.T) {
	var got bytes.Buffer
	w := &activityWriter{out: &got}
	_, _ = w.Write([]byte("[moto] 127.0.0.1 - - \"POST / HTTP/1.1\" 200 -\n[auditor] {\"time\":\"2026-12-05T20:35:00Z\",\"msg\":\"audit done\",\"secrets\":1}\n"))
	if want := time.Date(2026, 12, 5, 20, 35, 0, 0, time.UTC).Local().Format(time.TimeOnly) + " auditor: 1 secret, 0 problems\n"; got.String() != want {
		t.Errorf("got %q, want %q", got.String(), want)
	}
}
