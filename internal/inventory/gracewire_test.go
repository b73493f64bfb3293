package inventory

// The grace warning tests reach Warnings only through this file, so that
// they can be run against the code before it (this file swapped for a stub
// with `go test -overlay`) and fail on an assertion there.

func warnings(inv *Inventory) []Issue { return inv.Warnings() }
