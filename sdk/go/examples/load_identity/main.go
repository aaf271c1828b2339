// Load saved credentials (the guide's identity recipes): a config profile, an identity file,
// and clients made from each and from the THALOVANT_* environment variables.
//
//	go run ./examples/load_identity    (in a folder holding _identity.json, with a "prod"
//	                                    profile in the config file and THALOVANT_* set)
package main

import (
	"fmt"
	"log"

	thalovant "github.com/thalovant/thalovant-go-sdk"
)

func main() {
	identity, err := thalovant.IdentityFromConfig("", "prod")
	if err != nil {
		log.Fatal(err)
	}

	sameIdentity, err := thalovant.IdentityFromFile("_identity.json")
	if err != nil {
		log.Fatal(err)
	}

	clientFromConfig, err := thalovant.NewClientFromConfig("", "prod")
	if err != nil {
		log.Fatal(err)
	}
	clientFromFile, err := thalovant.NewClientFromFile("_identity.json")
	if err != nil {
		log.Fatal(err)
	}
	clientFromEnv, err := thalovant.NewClientFromEnv()
	if err != nil {
		log.Fatal(err)
	}

	fmt.Println(identity.SiteID, sameIdentity.SiteID)
	fmt.Println(clientFromConfig.Protocol, clientFromFile.Protocol, clientFromEnv.Protocol)
}
