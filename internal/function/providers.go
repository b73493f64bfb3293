package function

import (
	"github.com/keyrotor/keyrotor/internal/function/all"
	"github.com/keyrotor/keyrotor/internal/function/build/gateway"
)

// Gateway is the gateway provider's builder, as the gateway rotation
// function uses it (its main imports internal/function/build/gateway).
var Gateway Builder = gateway.Build

// All returns every provider's builder, by name: what the revoker serves
// (package internal/function/all).
func All() map[string]Builder { return all.Builders() }
