package audit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
)

// Interval returns the rotation interval that rules set: the cadence of the
// ScheduleExpression when there is one, else AutomaticallyAfterDays days.
// It returns 0 and no error when rules set no interval.
func Interval(rules *smtypes.RotationRulesType) (time.Duration, error) {
	if rules == nil {
		return 0, nil
	}
	if expr := strings.TrimSpace(aws.ToString(rules.ScheduleExpression)); expr != "" {
		return ScheduleInterval(expr)
	}
	if rules.AutomaticallyAfterDays != nil && *rules.AutomaticallyAfterDays > 0 {
		return time.Duration(*rules.AutomaticallyAfterDays) * 24 * time.Hour, nil
	}
	return 0, nil
}

// ScheduleInterval returns the interval of a Secrets Manager schedule
// expression. For rate(N unit) it is N units. For cron(minutes hours
// day-of-month month day-of-week year) it is the cadence of the expression:
// the longest time between two consecutive firings over the eight years
// from 2024 (so cron(0 2 1 * ? *), monthly, is 31 days, and
// cron(0 2 ? * MON,THU *) is 4 days). The longest gap is the one that bounds
// a key's age.
func ScheduleInterval(expr string) (time.Duration, error) {
	switch {
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		d, err := rateInterval(expr[len("rate(") : len(expr)-1])
		if err != nil {
			return 0, fmt.Errorf("schedule %q: %w", expr, err)
		}
		return d, nil
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		c, err := parseCron(expr[len("cron(") : len(expr)-1])
		if err != nil {
			return 0, fmt.Errorf("schedule %q: %w", expr, err)
		}
		d, err := c.longestGap()
		if err != nil {
			return 0, fmt.Errorf("schedule %q: %w", expr, err)
		}
		return d, nil
	}
	return 0, fmt.Errorf("schedule %q: not rate(...) or cron(...)", expr)
}

func rateInterval(s string) (time.Duration, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, errors.New("want rate(N unit)")
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("rate value %q is not a positive integer", f[0])
	}
	units := map[string]time.Duration{
		"minute": time.Minute, "minutes": time.Minute,
		"hour": time.Hour, "hours": time.Hour,
		"day": 24 * time.Hour, "days": 24 * time.Hour,
	}
	u, ok := units[f[1]]
	if !ok {
		return 0, fmt.Errorf("rate unit %q is not minutes, hours or days", f[1])
	}
	return time.Duration(n) * u, nil
}

// cron is a parsed six-field cron expression (EventBridge syntax, the one
// Secrets Manager uses): day-of-week counts 1 (SUN) to 7 (SAT), and one of
// day-of-month and day-of-week is "?".
type cron struct {
	minutes, hours, months, years set
	dom, dow                      dayMatcher // nil for "?"
}

type set map[int]bool

type dayMatcher func(t time.Time) bool

// Cadence window: eight years cover every leap-year and weekday alignment.
var (
	windowStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	windowEnd   = time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
)

func parseCron(s string) (*cron, error) {
	f := strings.Fields(s)
	if len(f) != 6 {
		return nil, fmt.Errorf("want 6 fields (minutes hours day-of-month month day-of-week year), got %d", len(f))
	}
	var c cron
	var err error
	if c.minutes, err = parseSet(f[0], 0, 59, nil); err != nil {
		return nil, fmt.Errorf("minutes: %w", err)
	}
	if c.hours, err = parseSet(f[1], 0, 23, nil); err != nil {
		return nil, fmt.Errorf("hours: %w", err)
	}
	if c.months, err = parseSet(f[3], 1, 12, monthNames); err != nil {
		return nil, fmt.Errorf("month: %w", err)
	}
	if c.years, err = parseSet(f[5], 1970, 2199, nil); err != nil {
		return nil, fmt.Errorf("year: %w", err)
	}
	if (f[2] == "?") == (f[4] == "?") {
		return nil, errors.New("exactly one of day-of-month and day-of-week must be ?")
	}
	if f[2] != "?" {
		if c.dom, err = parseDOM(f[2]); err != nil {
			return nil, fmt.Errorf("day-of-month: %w", err)
		}
	} else if c.dow, err = parseDOW(f[4]); err != nil {
		return nil, fmt.Errorf("day-of-week: %w", err)
	}
	return &c, nil
}

var (
	monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
	dayNames   = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
)

// parseSet parses a list of *, v, a-b, */s, v/s and a-b/s items.
func parseSet(field string, lo, hi int, names map[string]int) (set, error) {
	s := set{}
	for _, item := range strings.Split(field, ",") {
		if err := addItem(s, item, lo, hi, names); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func addItem(s set, item string, lo, hi int, names map[string]int) error {
	rng, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n <= 0 {
			return fmt.Errorf("step %q is not a positive integer", stepText)
		}
		step = n
	}
	var from, to int
	switch {
	case rng == "*":
		from, to = lo, hi
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		var err error
		if from, err = value(a, lo, hi, names); err != nil {
			return err
		}
		if to, err = value(b, lo, hi, names); err != nil {
			return err
		}
	default:
		v, err := value(rng, lo, hi, names)
		if err != nil {
			return err
		}
		from, to = v, v
		if hasStep {
			to = hi
		}
	}
	// A range may wrap (FRI-MON, NOV-FEB).
	n := to - from
	if n < 0 {
		n += hi - lo + 1
	}
	for i := 0; i <= n; i += step {
		s[lo+(from-lo+i)%(hi-lo+1)] = true
	}
	return nil
}

func value(text string, lo, hi int, names map[string]int) (int, error) {
	if v, ok := names[strings.ToUpper(text)]; ok {
		return v, nil
	}
	v, err := strconv.Atoi(text)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%q is not a value from %d to %d", text, lo, hi)
	}
	return v, nil
}

func daysIn(t time.Time) int {
	return time.Date(t.Year(), t.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// parseDOM parses day-of-month: a set, L (last day), LW (last weekday) or
// nW (the weekday nearest day n, within the month).
func parseDOM(field string) (dayMatcher, error) {
	switch {
	case field == "L":
		return func(t time.Time) bool { return t.Day() == daysIn(t) }, nil
	case field == "LW":
		return func(t time.Time) bool { return t.Day() == lastWeekday(t) }, nil
	case strings.HasSuffix(field, "W"):
		n, err := value(strings.TrimSuffix(field, "W"), 1, 31, nil)
		if err != nil {
			return nil, err
		}
		return func(t time.Time) bool { return t.Day() == nearestWeekday(t, n) }, nil
	}
	s, err := parseSet(field, 1, 31, nil)
	if err != nil {
		return nil, err
	}
	return func(t time.Time) bool { return s[t.Day()] }, nil
}

func lastWeekday(t time.Time) int {
	d := daysIn(t)
	switch time.Date(t.Year(), t.Month(), d, 0, 0, 0, 0, time.UTC).Weekday() {
	case time.Saturday:
		return d - 1
	case time.Sunday:
		return d - 2
	}
	return d
}

func nearestWeekday(t time.Time, n int) int {
	last := daysIn(t)
	if n > last {
		return -1
	}
	switch time.Date(t.Year(), t.Month(), n, 0, 0, 0, 0, time.UTC).Weekday() {
	case time.Saturday:
		if n == 1 {
			return 3 // Monday the 3rd: the nearest weekday stays in the month
		}
		return n - 1
	case time.Sunday:
		if n == last {
			return n - 2
		}
		return n + 1
	}
	return n
}

// parseDOW parses day-of-week: a set, nL (the last weekday n of the month)
// or n#k (the k-th weekday n of the month).
func parseDOW(field string) (dayMatcher, error) {
	wd := func(t time.Time) int { return int(t.Weekday()) + 1 }
	if field == "L" {
		field = "7"
	}
	if a, b, ok := strings.Cut(field, "#"); ok {
		n, err := value(a, 1, 7, dayNames)
		if err != nil {
			return nil, err
		}
		k, err := value(b, 1, 5, nil)
		if err != nil {
			return nil, err
		}
		return func(t time.Time) bool { return wd(t) == n && (t.Day()-1)/7+1 == k }, nil
	}
	if strings.HasSuffix(field, "L") {
		n, err := value(strings.TrimSuffix(field, "L"), 1, 7, dayNames)
		if err != nil {
			return nil, err
		}
		return func(t time.Time) bool { return wd(t) == n && t.Day()+7 > daysIn(t) }, nil
	}
	s, err := parseSet(field, 1, 7, dayNames)
	if err != nil {
		return nil, err
	}
	return func(t time.Time) bool { return s[wd(t)] }, nil
}

func (c *cron) firesOn(day time.Time) bool {
	if !c.years[day.Year()] || !c.months[int(day.Month())] {
		return false
	}
	if c.dom != nil {
		return c.dom(day)
	}
	return c.dow(day)
}

// longestGap returns the longest time between two consecutive firings in
// the window.
func (c *cron) longestGap() (time.Duration, error) {
	var times []int // minutes of the day at which it fires, ascending
	for h := 0; h < 24; h++ {
		for m := 0; m < 60; m++ {
			if c.hours[h] && c.minutes[m] {
				times = append(times, h*60+m)
			}
		}
	}
	within := 0
	for i := 1; i < len(times); i++ {
		within = max(within, times[i]-times[i-1])
	}
	longest, fires := 0, 0
	var prev time.Time
	for day := windowStart; day.Before(windowEnd); day = day.AddDate(0, 0, 1) {
		if !c.firesOn(day) {
			continue
		}
		fires += len(times)
		if !prev.IsZero() {
			days := int(day.Sub(prev).Hours()) / 24
			longest = max(longest, days*24*60+times[0]-times[len(times)-1])
		}
		longest = max(longest, within)
		prev = day
	}
	if fires < 2 {
		return 0, fmt.Errorf("fires %d times from %d to %d: no cadence", fires, windowStart.Year(), windowEnd.Year()-1)
	}
	return time.Duration(longest) * time.Minute, nil
}

// ParseInterval parses a rotation frequency or grace period: a number and
// a unit (m, h, d or w), or a Go duration such as 1h30m.
func ParseInterval(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n := len(s); n > 1 {
		unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[n-1]]
		if unit != 0 {
			v, err := strconv.Atoi(s[:n-1])
			if err != nil || v < 0 {
				return 0, fmt.Errorf("%q is not a duration such as 90d, 12h or 30m", s)
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 90d, 12h or 30m", s)
	}
	return d, nil
}
