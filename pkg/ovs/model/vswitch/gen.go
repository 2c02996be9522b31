// Package vswitch holds the libovsdb models of the Open_vSwitch database, generated from
// vswitch.ovsschema as shipped by Debian's openvswitch-switch 3.1 (copied here so the
// generation is reproducible). Do not edit the generated files; run 'make generate'.
package vswitch

//go:generate go tool modelgen -p vswitch -o . vswitch.ovsschema
