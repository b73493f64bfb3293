// Command datadog is the Secrets Manager rotation function for Datadog API and application keys: the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the datadog provider. Configuration: package internal/function/lambdafn.
package main

import (
	"github.com/keyrotor/keyrotor/internal/function/build/datadog"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

func main() { lambdafn.StartRotation(datadog.Build) }
