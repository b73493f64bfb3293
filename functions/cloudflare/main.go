// Command cloudflare is the Secrets Manager rotation function for Cloudflare API tokens: the
// createSecret, setSecret, testSecret and finishSecret steps of package
// rotation over the cloudflare provider. Configuration: package internal/function/lambdafn.
package main

import (
	"github.com/keyrotor/keyrotor/internal/function/build/cloudflare"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

func main() { lambdafn.StartRotation(cloudflare.Build) }
