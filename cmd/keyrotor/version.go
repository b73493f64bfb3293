package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// readBuildInfo is runtime/debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

// version is "keyrotor <module version> <vcs revision>", from the build
// information Go embeds: "(devel)" for a build in a checkout, the module
// version for `go install ...@version`; the revision is the commit the
// binary was built from, "unknown" when Go recorded none (go run, go test,
// -buildvcs=false).
func version() string {
	v, rev := "(devel)", "unknown"
	if bi, ok := readBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				rev = s.Value
			}
		}
	}
	return "keyrotor " + v + " " + rev
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print keyrotor's version and the commit it was built from",
		Long: `version prints "keyrotor <module version> <vcs revision>", as --version does: the module
version ("(devel)" for a build from a checkout) and the commit the binary was built from
("unknown" under go run).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), version())
			return err
		},
	}
}
