package operator

// The grace warning test reaches Status.Warnings only through this file, so
// that it can be run against the code before it (this file swapped for a
// stub with `go test -overlay`) and fail on an assertion there.

func warningsOf(st Status) []string { return st.Warnings }
