module github.com/thalovant/thalovant-go-sdk

go 1.26.0

require (
	github.com/flynn/noise v1.1.0 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
