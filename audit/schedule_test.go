package audit

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

const day = 24 * time.Hour

func TestScheduleInterval(t *testing.T) {
	cases := []struct {
		expr string
		want time.Duration
	}{
		{"rate(30 days)", 30 * day},
		{"rate(1 day)", day},
		{"rate(4 hours)", 4 * time.Hour},
		{"rate(90 minutes)", 90 * time.Minute},
		{"cron(0 2 1 * ? *)", 31 * day},                 // monthly: the longest month
		{"cron(0 22 * * ? *)", day},                     // daily
		{"cron(0 */4 * * ? *)", 4 * time.Hour},          // every four hours
		{"cron(30 2,14 * * ? *)", 12 * time.Hour},       // twice a day
		{"cron(0 8 ? * MON *)", 7 * day},                // weekly
		{"cron(0 8 ? * 2 *)", 7 * day},                  // weekly, by number (SUN=1)
		{"cron(0 8 ? * MON,THU *)", 4 * day},            // THU -> MON
		{"cron(0 8 ? * FRI-MON *)", 4 * day},            // a wrapping range: MON -> FRI
		{"cron(0 2 1 1,7 ? *)", 184 * day},              // twice a year: Jul 1 -> Jan 1
		{"cron(0 2 1 */3 ? *)", 92 * day},               // quarterly: Jul 1 -> Oct 1
		{"cron(0 0 L * ? *)", 31 * day},                 // last day of the month
		{"cron(0 0 ? * 6#3 *)", 35 * day},               // third Friday
		{"cron(0 0 ? * 2L *)", 35 * day},                // last Monday
		{"cron(0 0 1 JAN ? *)", 366 * day},              // yearly, across a leap day
		{"cron(0 2 1,15 * ? *)", 17 * day},              // the 15th -> the 1st of a 31-day month
		{"cron(15 10 ? * MON-FRI *)", 3 * day},          // weekdays: FRI -> MON
		{"cron(0 0 1 * ? 2024-2031)", 31 * day},         // a year range covering the window
		{"cron(0 3 ? * 1 *)", 7 * day},                  // Sunday
		{"cron(0 0/6 ? * SUN *)", 6*day + 6*time.Hour},  // Sunday 18:00 -> next Sunday 00:00
		{"cron(0 2 15W * ? *)", 32 * day},               // nearest weekday to the 15th: Fri 14th -> Tue 15th
		{"cron(0 2 LW * ? *)", 33 * day},                // last weekday: Fri 29th -> Wed 31st
		{"cron(0 4 ? JAN,APR,JUL,OCT 2#1 *)", 98 * day}, // first Monday of a quarter: Jul 1st -> Oct 7th
	}
	for _, c := range cases {
		got, err := ScheduleInterval(c.expr)
		if err != nil {
			t.Errorf("ScheduleInterval(%q): %v", c.expr, err)
			continue
		}
		if got != c.want {
			t.Errorf("ScheduleInterval(%q) = %v (%.2f days), want %v (%.2f days)", c.expr, got, got.Hours()/24, c.want, c.want.Hours()/24)
		}
	}
}

func TestScheduleIntervalErrors(t *testing.T) {
	cases := map[string]string{
		"rate(0 days)":              "positive integer",
		"rate(5 weeks)":             "unit",
		"rate(days)":                "rate(N unit)",
		"cron(0 2 1 * ?)":           "6 fields",
		"cron(0 2 1 * MON *)":       "exactly one",
		"cron(0 2 ? * ? *)":         "exactly one",
		"cron(60 2 1 * ? *)":        "minutes",
		"cron(0 2 1 FOO ? *)":       "month",
		"cron(0 2 ? * 8 *)":         "day-of-week",
		"cron(0 2 ? * 2#6 *)":       "day-of-week",
		"cron(0 2 1 */0 ? *)":       "step",
		"cron(0 0 1 1 ? 2030)":      "no cadence",
		"cron(0 0 31 2 ? *)":        "no cadence",
		"at(2026-01-01T00:00:00)":   "not rate",
		"":                          "not rate",
		"cron(0 2 32 * ? *)":        "day-of-month",
		"cron(0 2 ? * MON#2#3 *)":   "day-of-week",
		"rate(30 days) extra":       "not rate",
		"cron(0 2 1 * ? *) trailer": "not rate",
	}
	for expr, want := range cases {
		_, err := ScheduleInterval(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ScheduleInterval(%q) error = %v, want one containing %q", expr, err, want)
		}
	}
}

func TestNearestWeekday(t *testing.T) {
	cases := []struct {
		date string
		n    int
		want int
	}{
		{"2024-06-01", 15, 14}, // Saturday the 15th -> Friday
		{"2024-09-01", 15, 16}, // Sunday the 15th -> Monday
		{"2024-06-01", 1, 3},   // Saturday the 1st -> Monday the 3rd, not May
		{"2024-06-01", 30, 28}, // Sunday the 30th, the last day -> Friday
		{"2024-06-01", 12, 12}, // a Wednesday stays
		{"2024-02-01", 30, -1}, // no 30th in February
	}
	for _, c := range cases {
		d, _ := time.Parse(time.DateOnly, c.date)
		if got := nearestWeekday(d, c.n); got != c.want {
			t.Errorf("nearestWeekday(%s, %d) = %d, want %d", c.date, c.n, got, c.want)
		}
	}
}

func TestInterval(t *testing.T) {
	cases := []struct {
		name  string
		rules *smtypes.RotationRulesType
		want  time.Duration
	}{
		{"nil rules", nil, 0},
		{"days", &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)}, 30 * day},
		{"zero days (moto's answer to a schedule expression)", &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(0)}, 0},
		{"expression wins over days", &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30), ScheduleExpression: aws.String("rate(10 days)")}, 10 * day},
		{"cron", &smtypes.RotationRulesType{ScheduleExpression: aws.String("cron(0 2 1 * ? *)"), Duration: aws.String("2h")}, 31 * day},
	}
	for _, c := range cases {
		got, err := Interval(c.rules)
		if err != nil || got != c.want {
			t.Errorf("%s: Interval = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	if _, err := Interval(&smtypes.RotationRulesType{ScheduleExpression: aws.String("cron(bad)")}); err == nil {
		t.Error("Interval of a bad cron expression: no error")
	}
}

func TestParseInterval(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "4h": 4 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute} {
		if got, err := ParseInterval(in); err != nil || got != want {
			t.Errorf("ParseInterval(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"often", "-1d", "d", ""} {
		if _, err := ParseInterval(bad); err == nil {
			t.Errorf("ParseInterval(%q) accepted", bad)
		}
	}
}
