// Command gateway is the Secrets Manager rotation function for gateway keys: the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the gateway provider. Configuration: package internal/function/lambdafn.
package main

import (
	"github.com/keyrotor/keyrotor/internal/function/build/gateway"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

func main() { lambdafn.StartRotation(gateway.Build) }
