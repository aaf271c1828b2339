// Inspect an identity's protocols (the guide's protocol helpers).
//
//	THALOVANT_IDENTITY=identity.json go run ./examples/identity_protocols   (default _identity.json)
package main

import (
	"fmt"

	thalovant "github.com/thalovant/thalovant-go-sdk"
	"github.com/thalovant/thalovant-go-sdk/examples/internal/reader"
)

func main() {
	identity := reader.Identity()

	fmt.Println(identity.EnabledProtocols())
	fmt.Println(identity.EndpointFor(thalovant.ProtocolWSS))
	fmt.Println(identity.EndpointFor(thalovant.ProtocolHTTPS))
	fmt.Println(identity.EndpointFor(thalovant.ProtocolMQTT))
	fmt.Println(identity.SupportsProtocol(thalovant.ProtocolWSS))

	if identity.MQTT != nil {
		fmt.Println(identity.MQTT.Host, identity.MQTT.Port)
	}
}
