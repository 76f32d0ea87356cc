#!/usr/bin/env bash
# manifest.sh DIR — a sorted fingerprint of a tree, one line per entry:
# path|type|mode|uid|gid[|size=|sha=|mtime=|hardlink-group=|sparse] or |->target for symlinks.
# Used to compare a restored tree with the tree as it was when it was dumped.
set -euo pipefail
exec perl -MFile::Find -MDigest::SHA -e '
  my $root = shift; chdir $root or die "chdir $root: $!";
  my (%ino, @all);
  find({ no_chdir => 1, wanted => sub {
    my $p = $File::Find::name; my @s = lstat $p or die "lstat $p: $!";
    push @all, [$p, @s];
  }}, ".");
  for my $r (@all) { my ($p, @s) = @$r; push @{$ino{"$s[0]:$s[1]"}}, $p if ($s[2] & 0170000) == 0100000; }
  for my $r (sort { $a->[0] cmp $b->[0] } @all) {
    my ($p, @s) = @$r; my $m = $s[2]; my $t =
      ($m & 0170000) == 0040000 ? "d" : ($m & 0170000) == 0120000 ? "l" :
      ($m & 0170000) == 0100000 ? "f" : ($m & 0170000) == 0010000 ? "p" : "?";
    my @f = ($p, $t, sprintf("%04o", $m & 07777), "u$s[4]", "g$s[5]");
    if ($t eq "f") {
      my $d = Digest::SHA->new(256); $d->addfile($p);
      my @g = sort @{$ino{"$s[0]:$s[1]"}};
      push @f, "size=$s[7]", "sha=" . substr($d->hexdigest, 0, 16), "mtime=$s[9]",
               (@g > 1 ? "hardlink-group=$g[0]" : ()),
               ($s[12] * 512 < $s[7] ? "sparse" : ());
    } elsif ($t eq "l") { push @f, "->" . readlink($p); }
    print join("|", @f), "\n";
  }' "$1"
