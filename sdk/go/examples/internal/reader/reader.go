// Package reader gives the examples the values the guide leaves to the reader: which identity
// file, which carrier, which hub and names, read from the environment.
package reader

import (
	"log"
	"os"

	thalovant "github.com/thalovant/thalovant-go-sdk"
)

// Env is the variable's value, or fallback when it is unset or empty.
func Env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

// Identity loads the identity file named by THALOVANT_IDENTITY (default _identity.json, the
// guide's name); it stops the program when the file is unusable.
func Identity() *thalovant.Identity {
	identity, err := thalovant.IdentityFromFile(Env("THALOVANT_IDENTITY", "_identity.json"))
	if err != nil {
		log.Fatal(err)
	}
	return identity
}

// Protocol is the carrier named by THALOVANT_PROTOCOL (default wss).
func Protocol() thalovant.HubProtocol {
	return thalovant.HubProtocol(Env("THALOVANT_PROTOCOL", "wss"))
}

// Client is a client of Identity over Protocol, as the guide's runtime recipes start from.
func Client() *thalovant.Client {
	client, err := thalovant.NewClientWithOptions(Identity(), thalovant.ClientOptions{Protocol: Protocol()})
	if err != nil {
		log.Fatal(err)
	}
	return client
}
