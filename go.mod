module github.com/omiproject/omi

go 1.26

require (
	github.com/aws/aws-sdk-go v1.55.8 // indirect
	github.com/aws/aws-sdk-go-v2 v1.41.12
	github.com/aws/smithy-go v1.27.1 // indirect
	github.com/jmespath/go-jmespath v0.4.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/outscale/osc-sdk-go/v2 v2.35.0
	golang.org/x/oauth2 v0.36.0 // indirect
)
