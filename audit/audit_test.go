package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func managedTags() []smtypes.Tag {
	return []smtypes.Tag{{Key: aws.String("keyrotor:managed"), Value: aws.String("true")}}
}

func TestInspect(t *testing.T) {
	created := now.Add(-100 * day)
	cases := []struct {
		name  string
		e     smtypes.SecretListEntry
		check func(Status) error
	}{
		{"never rotated: age from creation, rotation disabled",
			smtypes.SecretListEntry{Name: aws.String("a"), CreatedDate: aws.Time(created)},
			func(s Status) error {
				if s.KeyAge != 100*day || s.RotationEnabled || s.Ratio() != 0 || s.Stuck() || s.Overdue {
					return fmt.Errorf("%+v", s)
				}
				return nil
			}},
		{"rotated 45 days ago every 30 days: ratio 1.5, next date 15 days late",
			smtypes.SecretListEntry{Name: aws.String("b"), CreatedDate: aws.Time(created), LastRotatedDate: aws.Time(now.Add(-45 * day)),
				RotationEnabled: aws.Bool(true), RotationRules: &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)},
				NextRotationDate: aws.Time(now.Add(-15 * day))},
			func(s Status) error {
				if s.KeyAge != 45*day || s.Interval != 30*day || s.Ratio() != 1.5 || !s.Overdue {
					return fmt.Errorf("%+v ratio %v", s, s.Ratio())
				}
				return nil
			}},
		{"monthly cron, next date inside its 2h window: not overdue",
			smtypes.SecretListEntry{Name: aws.String("c"), CreatedDate: aws.Time(created), LastRotatedDate: aws.Time(now.Add(-31 * day)),
				RotationEnabled: aws.Bool(true), RotationRules: &smtypes.RotationRulesType{ScheduleExpression: aws.String("cron(0 2 1 * ? *)"), Duration: aws.String("2h")},
				NextRotationDate: aws.Time(now.Add(-time.Hour))},
			func(s Status) error {
				if s.Interval != 31*day || s.Ratio() != 1 || s.Overdue {
					return fmt.Errorf("%+v", s)
				}
				return nil
			}},
		{"AWSPENDING on a version that is not AWSCURRENT: stuck",
			smtypes.SecretListEntry{Name: aws.String("d"), CreatedDate: aws.Time(created),
				SecretVersionsToStages: map[string][]string{"v1": {"AWSCURRENT"}, "v2": {"AWSPENDING"}}},
			func(s Status) error {
				if !s.Stuck() || s.PendingVersion != "v2" {
					return fmt.Errorf("%+v", s)
				}
				return nil
			}},
		{"AWSPENDING with AWSCURRENT: not stuck",
			smtypes.SecretListEntry{Name: aws.String("e"), CreatedDate: aws.Time(created),
				SecretVersionsToStages: map[string][]string{"v1": {"AWSCURRENT", "AWSPENDING"}, "v0": {"AWSPREVIOUS"}}},
			func(s Status) error {
				if s.Stuck() {
					return fmt.Errorf("%+v", s)
				}
				return nil
			}},
		{"a schedule that cannot be read: no ratio, an error",
			smtypes.SecretListEntry{Name: aws.String("f"), CreatedDate: aws.Time(created), RotationEnabled: aws.Bool(true),
				RotationRules: &smtypes.RotationRulesType{ScheduleExpression: aws.String("every day")}},
			func(s Status) error {
				if s.ScheduleError == nil || s.Ratio() != 0 {
					return fmt.Errorf("%+v", s)
				}
				return nil
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.check(Inspect(c.e, now)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestManagedNeedsTheExactTag(t *testing.T) {
	for _, tags := range [][]smtypes.Tag{
		nil,
		{{Key: aws.String("keyrotor:managed"), Value: aws.String("truely")}},
		{{Key: aws.String("keyrotor:managed-by"), Value: aws.String("true")}},
		{{Key: aws.String("other"), Value: aws.String("true")}, {Key: aws.String("keyrotor:managed"), Value: aws.String("false")}},
	} {
		if Managed(smtypes.SecretListEntry{Tags: tags}) {
			t.Errorf("tags %v count as managed", tags)
		}
	}
	if !Managed(smtypes.SecretListEntry{Tags: managedTags()}) {
		t.Error("keyrotor:managed=true does not count as managed")
	}
}

// fakeSM serves entries in pages of MaxResults.
type fakeSM struct {
	entries []smtypes.SecretListEntry
	calls   int
	err     error
}

func (f *fakeSM) ListSecrets(_ context.Context, in *secretsmanager.ListSecretsInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	start := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &start)
	}
	end := min(start+int(aws.ToInt32(in.MaxResults)), len(f.entries))
	out := &secretsmanager.ListSecretsOutput{SecretList: f.entries[start:end]}
	if end < len(f.entries) {
		out.NextToken = aws.String(fmt.Sprint(end))
	}
	return out, nil
}

type fakeCW struct {
	batches []*cloudwatch.PutMetricDataInput
	fail    int // fail the n-th call (1-based); 0 never
}

func (f *fakeCW) PutMetricData(_ context.Context, in *cloudwatch.PutMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	f.batches = append(f.batches, in)
	if len(f.batches) == f.fail {
		return nil, errors.New("throttled")
	}
	return &cloudwatch.PutMetricDataOutput{}, nil
}

func fleet(n int) []smtypes.SecretListEntry {
	var out []smtypes.SecretListEntry
	for i := range n {
		e := smtypes.SecretListEntry{Name: aws.String(fmt.Sprintf("s%04d", i)), CreatedDate: aws.Time(now.Add(-time.Duration(i) * time.Hour)), Tags: managedTags()}
		if i%10 != 0 {
			e.RotationEnabled = aws.Bool(true)
			e.RotationRules = &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(int64(1 + i%90))}
		}
		out = append(out, e)
	}
	return out
}

func TestRunBatchesAndCounts(t *testing.T) {
	entries := append(fleet(2500), smtypes.SecretListEntry{Name: aws.String("unmanaged"), CreatedDate: aws.Time(now)})
	sm, cw := &fakeSM{entries: entries}, &fakeCW{}
	var logs bytes.Buffer
	a := New(sm, cw, Options{Namespace: "Test", Now: func() time.Time { return now }, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	rep, err := a.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 2500 KeyAgeDays + 2250 KeyAgeRatio + 5 fleet metrics + the heartbeat.
	if rep.Secrets != 2500 || len(rep.RotationDisabled) != 250 || rep.Metrics != 2500+2250+5+1 {
		t.Fatalf("report: %d secrets, %d disabled, %d metrics", rep.Secrets, len(rep.RotationDisabled), rep.Metrics)
	}
	if sm.calls != 26 || len(cw.batches) != 5 {
		t.Fatalf("%d ListSecrets and %d PutMetricData calls, want 26 and 5", sm.calls, len(cw.batches))
	}
	total := 0
	for _, b := range cw.batches {
		if len(b.MetricData) > MaxMetricsPerCall || aws.ToString(b.Namespace) != "Test" {
			t.Fatalf("a batch of %d metrics in %s", len(b.MetricData), aws.ToString(b.Namespace))
		}
		total += len(b.MetricData)
	}
	if total != rep.Metrics {
		t.Fatalf("published %d metrics, reported %d", total, rep.Metrics)
	}
	if strings.Contains(logs.String(), "unmanaged") {
		t.Fatal("an unmanaged secret was audited")
	}
}

func TestListingFailurePublishesNothing(t *testing.T) {
	cw := &fakeCW{}
	_, err := New(&fakeSM{err: errors.New("AccessDenied")}, cw, Options{Now: func() time.Time { return now }}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "list managed secrets") || len(cw.batches) != 0 {
		t.Fatalf("err %v, %d batches", err, len(cw.batches))
	}
}

// Every audit that listed the fleet publishes AuditorHeartbeat = 1, without
// a dimension, as the last datum of its last batch; the template alarms when
// it is missing, so that an auditor that stopped cannot silence the alarms
// on its figures. An empty fleet still beats.
func TestRunPublishesHeartbeatLast(t *testing.T) {
	for _, n := range []int{0, 1200} {
		t.Run(fmt.Sprintf("%d secrets", n), func(t *testing.T) {
			cw := &fakeCW{}
			if _, err := New(&fakeSM{entries: fleet(n)}, cw, Options{Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}).Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			beats := 0
			for _, b := range cw.batches {
				for _, d := range b.MetricData {
					if aws.ToString(d.MetricName) == MetricAuditorHeartbeat {
						beats++
					}
				}
			}
			last := cw.batches[len(cw.batches)-1].MetricData
			d := last[len(last)-1]
			if beats != 1 || aws.ToString(d.MetricName) != MetricAuditorHeartbeat || aws.ToFloat64(d.Value) != 1 || len(d.Dimensions) != 0 {
				t.Fatalf("%d heartbeats; the last datum is %s = %v with %d dimensions, want one %s = 1 without dimension, last",
					beats, aws.ToString(d.MetricName), aws.ToFloat64(d.Value), len(d.Dimensions), MetricAuditorHeartbeat)
			}
		})
	}
}

func TestFailedBatchDoesNotStopTheOthers(t *testing.T) {
	cw := &fakeCW{fail: 1}
	_, err := New(&fakeSM{entries: fleet(600)}, cw, Options{Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "throttled") || len(cw.batches) != 2 {
		t.Fatalf("err %v, %d batches, want the error and both batches tried", err, len(cw.batches))
	}
}

func manualTags(freq string, created time.Time) []smtypes.Tag {
	tags := append(managedTags(),
		smtypes.Tag{Key: aws.String("keyrotor:manual"), Value: aws.String("true")},
		smtypes.Tag{Key: aws.String("keyrotor:rotation-frequency"), Value: aws.String(freq)})
	if !created.IsZero() {
		tags = append(tags, smtypes.Tag{Key: aws.String(TagKeyCreatedAt), Value: aws.String(created.Format(time.RFC3339))})
	}
	return tags
}

// A manual key (a vendor without a key API, such as Stripe) has no rotation:
// its schedule is a key-age reminder measured from its last import.
func TestInspectManualKey(t *testing.T) {
	created := now.Add(-100 * day)
	cases := []struct {
		name     string
		e        smtypes.SecretListEntry
		since    time.Time
		interval time.Duration
		badSched bool
	}{
		{"imported 45 days ago, reminder every 30 days: ratio 1.5 from the import",
			smtypes.SecretListEntry{Name: aws.String("m1"), CreatedDate: aws.Time(created), Tags: manualTags("30d", now.Add(-45*day))},
			now.Add(-45 * day), 30 * day, false},
		{"never imported: age from creation",
			smtypes.SecretListEntry{Name: aws.String("m2"), CreatedDate: aws.Time(created), Tags: manualTags("12h", time.Time{})},
			created, 12 * time.Hour, false},
		{"rotated after the import: LastRotatedDate wins",
			smtypes.SecretListEntry{Name: aws.String("m3"), CreatedDate: aws.Time(created), LastRotatedDate: aws.Time(now.Add(-2 * day)), Tags: manualTags("30d", now.Add(-45*day))},
			now.Add(-2 * day), 30 * day, false},
		{"import tag far in the future: ignored",
			smtypes.SecretListEntry{Name: aws.String("m4"), CreatedDate: aws.Time(created), Tags: manualTags("30d", now.Add(400*day))},
			created, 30 * day, false},
		{"import tag a minute ahead (clock skew): now",
			smtypes.SecretListEntry{Name: aws.String("m5"), CreatedDate: aws.Time(created), Tags: manualTags("30d", now.Add(time.Minute))},
			now, 30 * day, false},
		{"reminder that cannot be read: a bad schedule, no ratio",
			smtypes.SecretListEntry{Name: aws.String("m6"), CreatedDate: aws.Time(created), Tags: manualTags("monthly", time.Time{})},
			created, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := Inspect(c.e, now)
			if !s.Manual || !s.Since.Equal(c.since) || s.KeyAge != now.Sub(c.since) || s.Interval != c.interval || (s.ScheduleError != nil) != c.badSched {
				t.Fatalf("%+v, want since %s interval %s", s, c.since, c.interval)
			}
		})
	}
	// The import tag counts for any managed secret, not only manual ones.
	e := smtypes.SecretListEntry{Name: aws.String("x"), CreatedDate: aws.Time(created),
		Tags: append(managedTags(), smtypes.Tag{Key: aws.String(TagKeyCreatedAt), Value: aws.String(now.Add(-3 * day).Format(time.RFC3339))})}
	if s := Inspect(e, now); s.Manual || s.KeyAge != 3*day || s.Interval != 0 {
		t.Fatalf("%+v", s)
	}
}

// The auditor does not count manual keys as rotation disabled and publishes
// their KeyAgeRatio, so that the 1.5 × interval alarm covers them.
func TestRunManualKeys(t *testing.T) {
	entries := []smtypes.SecretListEntry{
		{Name: aws.String("stripe"), CreatedDate: aws.Time(now.Add(-400 * day)), Tags: manualTags("30d", now.Add(-60*day))},
		{Name: aws.String("off"), CreatedDate: aws.Time(now.Add(-10 * day)), Tags: managedTags()},
	}
	cw := &fakeCW{}
	rep, err := New(&fakeSM{entries: entries}, cw, Options{Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.RotationDisabled) != 1 || rep.RotationDisabled[0] != "off" || rep.MaxKeyAgeRatio != 2 || len(rep.BadSchedules) != 0 {
		t.Fatalf("report %+v: want only \"off\" rotation disabled and the manual key's ratio 2", rep)
	}
	got := map[string]float64{}
	for _, b := range cw.batches {
		for _, d := range b.MetricData {
			k := aws.ToString(d.MetricName)
			for _, dim := range d.Dimensions {
				k += "/" + aws.ToString(dim.Value)
			}
			got[k] = aws.ToFloat64(d.Value)
		}
	}
	for k, v := range map[string]float64{"KeyAgeDays/stripe": 60, "KeyAgeRatio/stripe": 2, "MaxKeyAgeRatio": 2, "RotationDisabled": 1} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (published: %t), want %v", k, g, ok, v)
		}
	}
	if _, ok := got["KeyAgeRatio/off"]; ok {
		t.Error("a KeyAgeRatio for a secret with neither rotation nor reminder")
	}
}
