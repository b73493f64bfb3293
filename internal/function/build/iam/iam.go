// Package iam builds the IAM access key provider from a function's
// environment (AWS endpoints from the SDK's configuration).
package iam

import (
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
	"github.com/keyrotor/keyrotor/providers"
	provider "github.com/keyrotor/keyrotor/providers/iam"
)

// Name is the provider's name.
const Name = provider.Name

// Build builds the IAM provider.
func Build(_ lambdafn.Env, c lambdafn.Clients) (providers.Provider, error) {
	return provider.New(c.Config, nil), nil
}
