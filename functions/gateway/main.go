// Command gateway is the Secrets Manager rotation function for gateway keys: the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the gateway provider. Configuration: package internal/function.
package main

import "github.com/keyrotor/keyrotor/internal/function"

func main() { function.StartRotation(function.Gateway) }
