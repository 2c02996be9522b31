// Package sb holds the libovsdb models of the OVN_Southbound database, generated from
// ovn-sb.ovsschema as shipped by Debian's ovn-central 23.03 (copied here so the
// generation is reproducible). The node role reads only Logical_Flow, to find the
// OpenFlow cookies of its policy drop ACLs. Do not edit the generated files; run
// 'make generate'.
package sb

//go:generate go tool modelgen -p sb -o . ovn-sb.ovsschema
