#!/usr/bin/perl
# Sends one UDP datagram with any source address and port (0 included), which no Node socket
# can do: a raw IPv4 socket (IPPROTO_RAW, header included; the kernel fills in the IP
# checksum). UDP checksum 0 = none, allowed in IPv4. Needs root; perl-base only.
#   spoof-udp.pl SRC_IP SRC_PORT DST_IP DST_PORT PAYLOAD_HEX
use strict;
use warnings;
use Socket qw(AF_INET SOCK_RAW inet_aton pack_sockaddr_in);

die "usage: $0 SRC_IP SRC_PORT DST_IP DST_PORT PAYLOAD_HEX\n" unless @ARGV == 5;
my ($src, $sport, $dst, $dport, $hex) = @ARGV;
my $payload = pack("H*", $hex);
my $udp_len = 8 + length($payload);
my $ip = pack("CCnnnCCna4a4", 0x45, 0, 20 + $udp_len, 0, 0x4000, 64, 17, 0, inet_aton($src), inet_aton($dst));
my $udp = pack("nnnn", $sport, $dport, $udp_len, 0) . $payload;
socket(my $s, AF_INET, SOCK_RAW, 255) or die "raw socket: $!\n";
defined(send($s, $ip . $udp, 0, pack_sockaddr_in(0, inet_aton($dst)))) or die "send: $!\n";
