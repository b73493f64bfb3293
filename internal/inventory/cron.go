package inventory

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MinRotationInterval is the shortest interval Secrets Manager rotates at.
const MinRotationInterval = 4 * time.Hour

// Cron is a 5-field cron schedule ("minute hour day-of-month month
// day-of-week", UTC) that Secrets Manager can run.
type Cron struct {
	hours, doms, months, dows []int
	domSet, dowSet            bool // restricted (not every value)
	// MinGap and MaxGap are the shortest and longest time between two
	// rotations over four years.
	MinGap, MaxGap time.Duration
	// LastHour is the latest hour of the day a rotation window opens.
	LastHour int
}

var (
	monthNames = []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}
	dayNames   = []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
)

// ParseCron parses a 5-field cron expression and refuses what Secrets
// Manager cannot run: a minute other than 0, a day-of-month and a
// day-of-week both restricted, rotations closer than 4 hours, a schedule
// that never fires or fires more than a year apart.
func ParseCron(expr string) (Cron, error) {
	f := strings.Fields(expr)
	if len(f) != 5 {
		return Cron{}, fmt.Errorf("cron %q has %d fields; want 5 (minute hour day-of-month month day-of-week)", expr, len(f))
	}
	minutes, err := parseField(f[0], 0, 59, nil)
	if err != nil {
		return Cron{}, fmt.Errorf("cron %q minute: %w", expr, err)
	}
	if len(minutes) != 1 || minutes[0] != 0 {
		return Cron{}, fmt.Errorf("cron %q: the minute must be 0, because Secrets Manager rotation windows open on the hour", expr)
	}
	var c Cron
	if c.hours, err = parseField(f[1], 0, 23, nil); err != nil {
		return Cron{}, fmt.Errorf("cron %q hour: %w", expr, err)
	}
	if c.doms, err = parseField(f[2], 1, 31, nil); err != nil {
		return Cron{}, fmt.Errorf("cron %q day-of-month: %w", expr, err)
	}
	if c.months, err = parseField(f[3], 1, 12, monthNames); err != nil {
		return Cron{}, fmt.Errorf("cron %q month: %w", expr, err)
	}
	// Day-of-week 0-7, where 0 and 7 are Sunday.
	dows, err := parseField(f[4], 0, 7, dayNames)
	if err != nil {
		return Cron{}, fmt.Errorf("cron %q day-of-week: %w", expr, err)
	}
	c.dows = normaliseDows(dows)
	c.domSet, c.dowSet = len(c.doms) < 31, len(c.dows) < 7
	if c.domSet && c.dowSet {
		return Cron{}, fmt.Errorf("cron %q restricts both day-of-month and day-of-week; Secrets Manager needs one of them to be * (it writes ?)", expr)
	}
	c.LastHour = c.hours[len(c.hours)-1]
	if err := c.measure(); err != nil {
		return Cron{}, fmt.Errorf("cron %q: %w", expr, err)
	}
	if c.MinGap < MinRotationInterval {
		return Cron{}, fmt.Errorf("cron %q rotates %s apart; Secrets Manager rotates at most every 4 hours", expr, formatInterval(c.MinGap))
	}
	return c, nil
}

// Expression returns the Secrets Manager schedule expression:
// cron(0 H DoM Mon DoW *) with ? in the unrestricted day field.
func (c Cron) Expression() string {
	dom, dow := list(c.doms, 31, nil), "?"
	if c.dowSet {
		dom, dow = "?", list(c.dows, 7, dayNames)
	}
	return fmt.Sprintf("cron(0 %s %s %s %s *)", list(c.hours, 24, nil), dom, list(c.months, 12, nil), dow)
}

func (c Cron) fires(t time.Time) bool {
	if !contains(c.hours, t.Hour()) || !contains(c.months, int(t.Month())) {
		return false
	}
	switch {
	case c.domSet:
		return contains(c.doms, t.Day())
	case c.dowSet:
		return contains(c.dows, int(t.Weekday()))
	}
	return true
}

// measure finds the shortest and longest gaps between firings over four
// years (a leap day included), hour by hour.
func (c *Cron) measure() error {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(4, 0, 0)
	var first, last time.Time
	for t := start; t.Before(end); t = t.Add(time.Hour) {
		if !c.fires(t) {
			continue
		}
		if !last.IsZero() {
			gap := t.Sub(last)
			if c.MinGap == 0 || gap < c.MinGap {
				c.MinGap = gap
			}
			c.MaxGap = max(c.MaxGap, gap)
		} else {
			first = t
		}
		last = t
	}
	if first.IsZero() {
		return fmt.Errorf("it never fires")
	}
	if first == last || c.MaxGap > 366*24*time.Hour {
		return fmt.Errorf("it fires less than once a year; Secrets Manager schedules must repeat within a year")
	}
	return nil
}

func normaliseDows(in []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, d := range in {
		d %= 7
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Ints(out)
	return out
}

// parseField parses a standard cron field: *, n, a-b, with /step, in a
// comma list. names, when given, spell values lo..lo+len(names)-1.
func parseField(s string, lo, hi int, names []string) ([]int, error) {
	seen := map[int]bool{}
	for _, item := range strings.Split(s, ",") {
		rng, step := item, 1
		if i := strings.IndexByte(item, '/'); i >= 0 {
			n, err := strconv.Atoi(item[i+1:])
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%q: the step must be a positive number", item)
			}
			rng, step = item[:i], n
		}
		from, to := lo, hi
		switch {
		case rng == "*":
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if from, err = value(a, lo, hi, names); err != nil {
				return nil, err
			}
			if to, err = value(b, lo, hi, names); err != nil {
				return nil, err
			}
			if from > to {
				return nil, fmt.Errorf("%q: the range runs backwards", item)
			}
		default:
			v, err := value(rng, lo, hi, names)
			if err != nil {
				return nil, err
			}
			from = v
			if step == 1 {
				to = v
			}
		}
		for v := from; v <= to; v += step {
			seen[v] = true
		}
	}
	out := make([]int, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Ints(out)
	return out, nil
}

func value(s string, lo, hi int, names []string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return lo + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%d is outside %d-%d", v, lo, hi)
	}
	return v, nil
}

// list writes the values as * when they are all n of them, else as a
// comma list (names for days of the week).
func list(vs []int, n int, names []string) string {
	if len(vs) == n {
		return "*"
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		if names != nil {
			parts[i] = names[v]
		} else {
			parts[i] = strconv.Itoa(v)
		}
	}
	return strings.Join(parts, ",")
}

func contains(vs []int, v int) bool {
	i := sort.SearchInts(vs, v)
	return i < len(vs) && vs[i] == v
}

// formatInterval writes d as whole days ("30d") or whole hours ("12h")
// when it is one, else as a Go duration.
func formatInterval(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// rateExpression returns rate(N days) or rate(N hours) for an interval.
func rateExpression(d time.Duration) (string, error) {
	switch {
	case d < MinRotationInterval:
		return "", fmt.Errorf("%s is shorter than 4 hours, the shortest interval Secrets Manager rotates at", formatInterval(d))
	case d%(24*time.Hour) == 0:
		n := int(d / (24 * time.Hour))
		if n > 1000 {
			return "", fmt.Errorf("%s is longer than 1000 days, the longest rate Secrets Manager accepts", formatInterval(d))
		}
		return fmt.Sprintf("rate(%d %s)", n, plural(n, "day")), nil
	case d%time.Hour == 0:
		n := int(d / time.Hour)
		return fmt.Sprintf("rate(%d %s)", n, plural(n, "hour")), nil
	}
	return "", fmt.Errorf("%s is not a whole number of hours or days", d)
}

// Count writes n units in English: "1 problem", "2 problems".
func Count(n int, unit string) string { return fmt.Sprintf("%d %s", n, plural(n, unit)) }

func plural(n int, unit string) string {
	if n == 1 {
		return unit
	}
	return unit + "s"
}
