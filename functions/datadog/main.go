// Command datadog is the Secrets Manager rotation function for Datadog API and application keys: the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the datadog provider. Configuration: package internal/function.
package main

import "github.com/keyrotor/keyrotor/internal/function"

func main() { function.StartRotation(function.Datadog) }
