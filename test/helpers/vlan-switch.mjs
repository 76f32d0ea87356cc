// A user-space 802.1Q switch for tests (test/helpers/vlan-switch.ts starts it): this machine's
// kernel has neither the 8021q module nor bridge VLAN filtering, so a VLAN trunk is made here.
// Each port is a UDP socket pair with a QEMU `-netdev dgram` backend (a machine's NIC, or a hub
// that joins a tap on a namespace bridge). A trunk port carries its native VLAN untagged and
// the others tagged; an access port carries one VLAN untagged. Frames are flooded to the other
// member ports of their VLAN (a handful of ports: no learning needed). A trunk port can refuse
// TCP on its native VLAN, as a LAN whose only HTTP is on a tagged VLAN does. Counters go to a
// JSON file every second and on SIGTERM.
//
//   node vlan-switch.mjs '{"stats":"/tmp/s.json","ports":[
//     {"name":"vm","local":40010,"peer":40011,"native":10,"tagged":[20],"nativeTcp":false},
//     {"name":"v10","local":40020,"peer":40021,"access":10}]}'
import { createSocket } from "node:dgram";
import { writeFileSync } from "node:fs";

const config = JSON.parse(process.argv[2]);
const TPID = 0x8100;
const ports = config.ports.map((p) => ({
  ...p,
  socket: createSocket("udp4"),
  vlans: p.access !== undefined ? [p.access] : [p.native, ...p.tagged],
  native: p.access ?? p.native,
}));
const stats = Object.fromEntries(ports.map((p) => [p.name, { in: {}, out: {}, dropped: {} }]));
const count = (table, key, bytes) => {
  const c = (table[key] ??= { frames: 0, bytes: 0 });
  c.frames++;
  c.bytes += bytes;
};

/** Is this (untagged) frame IPv4 TCP? */
const isTcp = (frame) => frame.readUInt16BE(12) === 0x0800 && frame.length > 23 && frame[23] === 6;

function send(port, vlan, untagged) {
  if (vlan === port.native && port.nativeTcp === false && isTcp(untagged)) return count(stats[port.name].dropped, `tcp-on-native-${vlan}`, untagged.length);
  let out = untagged;
  if (vlan !== port.native) {
    const tag = Buffer.alloc(4);
    tag.writeUInt16BE(TPID, 0);
    tag.writeUInt16BE(vlan & 0xfff, 2);
    out = Buffer.concat([untagged.subarray(0, 12), tag, untagged.subarray(12)]);
  }
  count(stats[port.name].out, String(vlan), out.length);
  port.socket.send(out, port.peer, "127.0.0.1");
}

function receive(port, frame) {
  if (frame.length < 14) return count(stats[port.name].dropped, "runt", frame.length);
  let vlan = port.native;
  let untagged = frame;
  if (frame.readUInt16BE(12) === TPID) {
    vlan = frame.readUInt16BE(14) & 0xfff;
    untagged = Buffer.concat([frame.subarray(0, 12), frame.subarray(16)]);
    // A tag naming the native VLAN or a VLAN this port does not carry goes nowhere.
    if (vlan === port.native || !port.vlans.includes(vlan)) return count(stats[port.name].dropped, `vlan-${vlan}`, frame.length);
  }
  if (vlan === port.native && port.nativeTcp === false && isTcp(untagged)) return count(stats[port.name].dropped, `tcp-on-native-${vlan}`, frame.length);
  count(stats[port.name].in, String(vlan), frame.length);
  for (const other of ports) if (other !== port && other.vlans.includes(vlan)) send(other, vlan, untagged);
}

const flush = () => writeFileSync(config.stats, JSON.stringify(stats));
for (const port of ports) {
  port.socket.on("message", (frame) => receive(port, frame));
  port.socket.bind(port.local, "127.0.0.1");
}
setInterval(flush, 1000);
process.on("SIGTERM", () => {
  flush();
  process.exit(0);
});
