// Package openflow reads flow statistics from an Open vSwitch bridge over OpenFlow 1.3,
// on the bridge's management socket (<rundir>/<bridge>.mgmt). It implements only what the
// node role needs to count the packets that OVN's flows matched: the flow-statistics
// request filtered by cookie. It writes nothing to the switch.
//
// Each call opens its own connection and closes it before returning, so a Client holds
// no state and is safe for concurrent use.
package openflow
