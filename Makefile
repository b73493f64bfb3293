# keyrotor — build, test, lint, demo, bench.
# `make test` is what CI runs (.ci/run); `make demo` runs one rotation on the local stack.

GO        ?= go
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
export CGO_ENABLED = 0

RIE_VERSION         := v0.0.0-20261030222936-bef5c4ba774d
STATICCHECK_VERSION := v0.8.2
GOFLAGS_LAMBDA      := -tags lambda.norpc -trimpath -ldflags=-s\ -w
ARCH                ?= arm64
FUNCTIONS           := $(notdir $(wildcard functions/*))

.PHONY: all build keyrotor tools test unit lint fmt demo bench clean

all: lint test

## tools: install the Lambda runtime emulator and staticcheck (pinned) into GOBIN
tools:
	@test -x $(GOBIN)/aws-lambda-rie || $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

## build: linux/$(ARCH) bootstrap binaries of every function in bin/$(ARCH)/<function>/bootstrap
build:
	@for f in $(FUNCTIONS); do \
		GOOS=linux GOARCH=$(ARCH) $(GO) build $(GOFLAGS_LAMBDA) -o bin/$(ARCH)/$$f/bootstrap ./functions/$$f || exit 1; \
		echo "bin/$(ARCH)/$$f/bootstrap"; \
	done

## keyrotor: the operator CLI for this machine in bin/keyrotor (run it, not `go run`: that makes every exit code 1)
keyrotor:
	$(GO) build -buildvcs=auto -o bin/keyrotor ./cmd/keyrotor

## test: every test (unit, moto and emulator integration, end to end) and the template checks
test: tools
	cfn-lint template.yaml
	$(GO) test -count=1 -timeout 30m ./...

## unit: the fast tests only
unit:
	$(GO) test -count=1 -short ./...

## lint: formatting, vet, staticcheck, cfn-lint
lint: tools
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	staticcheck ./...
	cfn-lint template.yaml

fmt:
	gofmt -w $$(git ls-files '*.go')

## demo: start the local stack, rotate demo/gateway and tell the story, stop everything
demo: tools
	$(GO) run ./cmd/keyrotor demo

## bench: start-up, memory, size and API calls of the functions, printed
bench: tools
	$(GO) run ./cmd/keyrotor bench

clean:
	rm -rf bin .aws-sam

# SAM (BuildMethod: makefile) calls build-<LogicalId> with ARTIFACTS_DIR set.
build-GatewayRotationFunction:
	GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/gateway
build-IamRotationFunction:
	GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/iam
build-ApiGatewayRotationFunction:
	GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/apigateway
build-SendgridRotationFunction:
	GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/sendgrid
build-TwilioRotationFunction:
	GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/twilio
build-DatadogRotationFunction:
	GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/datadog
build-CloudflareRotationFunction:
	GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/cloudflare
build-RevokerFunction:
	GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/revoker
build-AuditorFunction:
	GOOS=linux GOARCH=arm64 $(GO) build $(GOFLAGS_LAMBDA) -o $(ARTIFACTS_DIR)/bootstrap ./functions/auditor
