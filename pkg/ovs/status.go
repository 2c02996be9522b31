package ovs

// Connected reports whether the client is connected to the Open_vSwitch database now
// (it reconnects by itself; this is for readiness reporting).
func (v *VSwitch) Connected() bool { return v.c.Connected() }

// Connected reports whether the client is connected to the Northbound database now.
func (n *Northbound) Connected() bool { return n.c.Connected() }
