/**
 * THE contract between the plan builder and the rescue agent: the step functions a plan
 * may call, their positional arguments, and how a plan is rendered into POSIX sh.
 *
 * The agent (rescue-image/agent/) defines one sh function per entry of `STEP_FUNCTIONS`,
 * with exactly these names and arity, then runs the rendered plan with `.` (the plan is
 * nothing but calls to them). A test checks both sides against this table.
 *
 * Conventions every function follows:
 * - Arguments are strings; "" means "none / not known" where an argument says so.
 *   Sizes are decimal byte counts. Device arguments are absolute /dev paths on the
 *   rescue system. Mount points are paths in the restored system ("/", "/boot"); the agent
 *   mounts them under its own target root.
 * - A function returns non-zero on failure; the agent stops the plan at that call, posts
 *   its output and waits. It never continues past a failed step.
 * - Resume: a step is skipped only when the job's log records that same call (index and
 *   text) as finished AND its `guard` still holds on the device. Otherwise it runs.
 * - Names avoid sh reserved words and real commands (`mkfs`, `mkswap`, `done`) so an
 *   implementation can call the real tool without recursing.
 */

export interface StepArg {
  /** Name in the contract (used in documentation and by `step()` below). */
  readonly name: string;
  readonly doc: string;
}

export interface StepSpec {
  readonly doc: string;
  /** Fixed positional arguments, in order. */
  readonly args: readonly StepArg[];
  /** Zero or more further arguments of one kind after the fixed ones (e.g. member devices). */
  readonly rest?: StepArg;
  /** What the agent checks before re-running the step on resume (see the header). */
  readonly guard: string;
}

const a = <N extends string>(name: N, doc: string) => ({ name, doc }) as const;

export const STEP_FUNCTIONS = {
  plan_begin: {
    doc: "First call of every plan. The agent refuses a contract version it does not implement.",
    args: [
      a("contract", "contract version (CONTRACT_VERSION)"),
      a("host", "captured host name the plan restores (for logs)"),
      a("steps", "number of calls in the plan including plan_begin and plan_done"),
    ],
    guard: "never skipped",
  },
  check_disk: {
    doc:
      "Identity gate, before any write: DEV must exist, be a whole disk of exactly SIZE bytes, and " +
      "match SERIAL and WWN where given. Any mismatch fails the plan before anything is written.",
    args: [
      a("dev", "target disk, e.g. /dev/sda"),
      a("serial", "expected serial as the agent reported it (lsblk SERIAL), or \"\""),
      a("wwn", "expected WWN (lsblk WWN), or \"\""),
      a("size_bytes", "expected size in bytes"),
    ],
    guard: "never skipped",
  },
  wipe_disk: {
    doc: "Removes every signature on DEV and on its partitions (wipefs -a), so no stale RAID/LVM/fs metadata survives.",
    args: [
      a("dev", "target disk"),
      a("label_id", "disk identifier the following partition call creates (GPT disk GUID or MBR 0xID)"),
    ],
    guard: "DEV already carries a partition table with LABEL_ID",
  },
  partition: {
    doc:
      "Writes a partition table: `printf '%s\\n' \"$SCRIPT\" | sfdisk DEV`, then waits for the partition " +
      "devices (udevadm settle / partx -u).",
    args: [
      a("dev", "target disk, or an MD array create_md made (gated through its members)"),
      a(
        "sfdisk_script",
        "an sfdisk script (sfdisk --dump format: label, label-id, unit: sectors, sector-size, " +
          "then one `DEVn : start=, size=, type=, uuid=, name=, attrs=` line per partition)",
      ),
    ],
    guard: "`sfdisk --dump DEV` shows the same label-id and the same partition lines",
  },
  create_md: {
    doc: "Creates an MD array (mdadm --create --run, with --uuid and --name, and --size when given) from the member devices.",
    args: [
      a("dev", "array device, e.g. /dev/md0"),
      a("name", "array name (mdadm --name), or \"\""),
      a("level", "raid level: raid0, raid1, raid5, raid6, raid10, linear"),
      a("metadata", "superblock version: 1.2, 1.0, 0.90"),
      a("uuid", "array UUID (mdadm --detail form, colons)"),
      a("size_kib", "KiB each member gives the array (mdadm --size: an array partitioned next is made its captured size), or \"\": all of each member"),
    ],
    rest: a("member", "member device, in array slot order"),
    guard: "DEV exists and `mdadm --detail DEV` shows UUID",
  },
  create_luks: {
    doc:
      "Formats DEV as LUKS with the captured header UUID and, where given, the captured version, cipher, " +
      "key size and hash (cryptsetup luksFormat --uuid --type --cipher --key-size --hash; \"\": cryptsetup's " +
      "default), then opens it as /dev/mapper/NAME. The passphrase is never in the plan: the agent fetches " +
      "key KEY_ID from the job.",
    args: [
      a("dev", "device to encrypt"),
      a("uuid", "LUKS header UUID"),
      a("name", "dm name to open it as (from crypttab), giving /dev/mapper/NAME"),
      a("key_id", "id of the admin-supplied key for this job (the captured LUKS UUID)"),
      a("type", "luks1 or luks2, or \"\""),
      a("cipher", "ALGORITHM-MODE, e.g. aes-xts-plain64, or \"\""),
      a("key_size", "key size in bits, or \"\""),
      a("hash", "hash, e.g. sha256, or \"\""),
    ],
    guard: "`cryptsetup luksUUID DEV` is UUID and the header is of TYPE where given (then it is only opened)",
  },
  create_pv: {
    doc: "Creates an LVM physical volume with the captured UUID (pvcreate --uuid --norestorefile).",
    args: [a("dev", "device"), a("uuid", "PV UUID")],
    guard: "`pvs` shows DEV with UUID",
  },
  create_vg: {
    doc: "Creates a volume group on the given PVs (vgcreate -s).",
    args: [a("vg", "VG name"), a("extent_bytes", "physical extent size in bytes")],
    rest: a("pv", "PV device"),
    guard: "`vgs VG` succeeds",
  },
  create_lv: {
    doc: "Creates a linear logical volume of SIZE bytes (lvcreate -L SIZEb -n LV VG -W y -Z y -y).",
    args: [a("vg", "VG name"), a("lv", "LV name"), a("size_bytes", "size in bytes, a multiple of the extent size")],
    guard: "/dev/VG/LV exists with SIZE bytes",
  },
  make_fs: {
    doc:
      "Creates a filesystem with the captured UUID and label. The agent maps UUID/LABEL to the tool's " +
      "own flags (ext*: -U -L; xfs: -m uuid= -L; vfat: -i XXXXXXXX -n; btrfs: -U -L), and passes each " +
      "OPTION as one argument to mkfs.FSTYPE. Old signatures on DEV are wiped first.",
    args: [
      a("fstype", "ext2, ext3, ext4, xfs, vfat, btrfs"),
      a("dev", "device"),
      a("uuid", "filesystem UUID, or \"\" for a new one"),
      a("label", "label, or \"\""),
    ],
    rest: a("option", "a further mkfs.FSTYPE argument, e.g. -O ^metadata_csum or -I 256"),
    guard: "blkid shows TYPE=FSTYPE and UUID on DEV",
  },
  make_swap: {
    doc: "Creates swap space (mkswap -U UUID -L LABEL).",
    args: [a("dev", "device"), a("uuid", "swap UUID, or \"\""), a("label", "label, or \"\"")],
    guard: "blkid shows TYPE=swap and UUID on DEV",
  },
  create_subvol: {
    doc: "Creates a btrfs subvolume at PATH below the top level (subvolid=5) of the filesystem on DEV.",
    args: [a("dev", "btrfs device"), a("path", "subvolume path relative to the top level, e.g. @home")],
    guard: "the subvolume exists",
  },
  set_default_subvol: {
    doc: "Makes PATH the default subvolume of the btrfs filesystem on DEV (btrfs subvolume set-default), what a mount without subvol= opens (snapper's root).",
    args: [a("dev", "btrfs device"), a("path", "subvolume path relative to the top level, created before")],
    guard: "`btrfs subvolume get-default` names PATH",
  },
  set_nocow: {
    doc: "Marks the btrfs subvolume PATH no-copy-on-write (chattr +C on its still empty top directory; files made in it inherit it).",
    args: [a("dev", "btrfs device"), a("path", "subvolume path relative to the top level, created before")],
    guard: "`lsattr -d` shows C on it",
  },
  mount_fs: {
    doc: "Mounts DEV at MOUNTPOINT below the target root (creating the directory). Plans mount parents first.",
    args: [
      a("dev", "device"),
      a("mountpoint", "mount point in the restored system, e.g. / or /boot/efi"),
      a("fstype", "filesystem type"),
      a("options", "mount -o options, e.g. subvol=@, or \"\""),
    ],
    guard: "DEV is mounted there",
  },
  restore_dump: {
    doc:
      "Streams one dump into MOUNTPOINT: HTTP GET of URL (relative to the Lifeboat server) piped through " +
      "the decompressor into `tar -xpG --numeric-owner -f -` (gtar) or `restore -rf -` (dump). One call " +
      "per dump, level 0 first, in chain order. Resumes with Range; posts byte count and checksum.",
    args: [
      a("mountpoint", "mount point of the DLE in the restored system"),
      a("program", "gtar or dump"),
      a("level", "dump level (0 first)"),
      a("compression", "none, gzip, bzip2, xz or zstd: what the stream carries"),
      a("size_bytes", "expected stream size in bytes, or \"\" if unknown"),
      a("url", "stream path on the server (dumpStreamPath: DUMPS_BASE/<id>/stream), or the full URL on the server of the store that holds the dump"),
    ],
    guard: "the job log records this dump as restored with a matching checksum",
  },
  fix_fstab: {
    doc: "Replaces OLD_UUID by NEW_UUID in etc/fstab and etc/crypttab of the restored system (only where a UUID had to change).",
    args: [a("old_uuid", "UUID in the captured system"), a("new_uuid", "UUID the plan created instead")],
    guard: "OLD_UUID no longer appears in either file",
  },
  set_identity: {
    doc:
      "Clones: gives the restored system its own identity. Writes HOSTNAME to etc/hostname (and in etc/hosts), " +
      "empties etc/machine-id so systemd makes a new one at first boot, removes the SSH host keys and " +
      "regenerates them (ssh-keygen -A in a chroot) when the system has ssh-keygen.",
    args: [a("hostname", "the clone's host name (letters, digits, '-' and '.')")],
    guard: "etc/hostname already holds HOSTNAME",
  },
  map_nic: {
    doc:
      "Gives the new NIC with NEW_MAC the captured NIC's NAME and configuration in the restored system: writes " +
      "etc/systemd/network/10-lifeboat-NAME.link (match NEW_MAC, Name=NAME) and, when the MAC changed, replaces OLD_MAC " +
      "by NEW_MAC where configs pin it (ifupdown hwaddress, networkd/netplan, NetworkManager, udev 70-persistent-net.rules, ifcfg HWADDR).",
    args: [a("name", "the captured NIC's name (letters, digits, '_', '.', '-')"), a("old_mac", "its MAC"), a("new_mac", "the new machine's NIC that takes its place")],
    guard: "the .link file names NEW_MAC and OLD_MAC appears in none of the configs (when it changed)",
  },
  set_address: {
    doc:
      "Gives the restored system ADDRESS (with GATEWAY and DNS when given) on its NIC NAME, written the way that system configures it: " +
      "ifupdown (the NIC's stanza in etc/network/interfaces commented out, a static one appended), systemd-networkd " +
      "(etc/systemd/network/05-lifeboat-NAME.network, ahead of its others), netplan (etc/netplan/99-lifeboat-NAME.yaml, over its others), " +
      "NetworkManager (system-connections/lifeboat-NAME.nmconnection, ahead by autoconnect-priority); each one the system has.",
    args: [
      a("name", "the captured NIC's name (letters, digits, '_', '.', '-'; map_nic gave the new NIC this name)"),
      a("address", "IPv4 address with its prefix, e.g. 10.0.5.21/24"),
      a("gateway", "the default gateway, or \"\""),
      a("dns", "DNS servers, comma-separated, or \"\""),
    ],
    guard: "every file set_address writes for NAME holds ADDRESS",
  },
  install_bootloader: {
    doc:
      "Installs the boot loader from the restored system (chroot, with /dev /proc /sys bound): " +
      "grub-install for bios on DISK; for uefi into EFI_DIR with BOOTLOADER_ID, plus an EFI boot entry; " +
      "grub-shim: grub-install --uefi-secure-boot (the system's shim-signed and grub-efi-amd64-signed), the boot entry and " +
      "EFI/BOOT/BOOTX64.EFI both shim, so it boots with Secure Boot on.",
    args: [
      a("firmware", "bios or uefi"),
      a("loader", "grub (grub-install/grub2-install), grub-shim (uefi: shim and the signed GRUB) or systemd-boot"),
      a("disk", "disk that holds the boot code (bios) or the EFI system partition (uefi)"),
      a("efi_dir", "mount point of the EFI system partition, e.g. /boot/efi, or \"\" for bios"),
      a("bootloader_id", "EFI directory/entry name, e.g. debian, or \"\" for bios"),
    ],
    guard: "never skipped (re-installing is harmless)",
  },
  regen_initramfs: {
    doc: "Regenerates every initramfs of the restored system in a chroot (update-initramfs -u -k all, dracut --regenerate-all -f, mkinitcpio -P).",
    args: [a("tool", "update-initramfs, dracut or mkinitcpio")],
    guard: "never skipped",
  },
  unmount_all: {
    doc: "Unmounts everything below the target root (deepest first), closes LUKS, stops LVM/MD activity.",
    args: [],
    guard: "never skipped",
  },
  plan_done: {
    doc:
      "Last call: the agent reports success and, once Lifeboat confirmed the job done, ends as END_STATE says: " +
      "reboot (into the restored system), poweroff, or hold (the rescue system stays up for remote help, and says so).",
    args: [a("end_state", "reboot, poweroff or hold (END_STATES)")],
    guard: "never skipped",
  },
} as const satisfies Record<string, StepSpec>;

/** The step contract's version: plan_begin's first argument, which the agent (LB_CONTRACT_VERSION in steps.sh) must equal. */
export const CONTRACT_VERSION = "3";

/**
 * What a machine does once its job is done (plan_done's argument; LB_END_STATES in steps.sh):
 * reboot into the restored system, power off (cold spares, drills), or hold in the rescue
 * system for remote help. The first is the default.
 */
export const END_STATES = ["reboot", "poweroff", "hold"] as const;
export type EndState = (typeof END_STATES)[number];
export const DEFAULT_END_STATE: EndState = END_STATES[0];

export type StepName = keyof typeof STEP_FUNCTIONS;

type ArgNames<K extends StepName> = (typeof STEP_FUNCTIONS)[K]["args"][number]["name"];

/** One call of the plan: a step function and its positional arguments. */
export interface Step {
  readonly fn: StepName;
  readonly args: readonly string[];
}

/**
 * Builds a step from named arguments (checked at compile time against the contract) and,
 * for functions with `rest`, the trailing list. Throws if a value is missing.
 */
export function step<K extends StepName>(fn: K, named: Record<ArgNames<K>, string | number>, rest: readonly string[] = []): Step {
  const spec: StepSpec = STEP_FUNCTIONS[fn];
  const values = named as Record<string, string | number | undefined>;
  const args = spec.args.map((arg) => {
    const v = values[arg.name];
    if (v === undefined) throw new Error(`step ${fn}: argument ${arg.name} missing`);
    return String(v);
  });
  if (rest.length && !spec.rest) throw new Error(`step ${fn}: takes no further arguments`);
  return { fn, args: [...args, ...rest] };
}

/** The allowed number of arguments of a step function. */
export function stepArity(fn: StepName): { min: number; max: number } {
  const spec: StepSpec = STEP_FUNCTIONS[fn];
  return { min: spec.args.length, max: spec.rest ? Number.POSITIVE_INFINITY : spec.args.length };
}

/** Checks a step against the contract; throws a one-line error naming the step. */
export function checkStep(s: Step, index?: number): void {
  const where = index === undefined ? s.fn : `step ${index + 1} (${s.fn})`;
  if (!Object.hasOwn(STEP_FUNCTIONS, s.fn)) throw new Error(`${where}: not a step function of the contract`);
  const { min, max } = stepArity(s.fn);
  if (s.args.length < min || s.args.length > max)
    throw new Error(`${where}: expected ${min === max ? min : `at least ${min}`} arguments, got ${s.args.length}`);
  for (const v of s.args) if (typeof v !== "string") throw new Error(`${where}: every argument must be a string`);
}

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quotes one string as a single POSIX sh word. Plain words stay as they are (readable
 * plans); anything else is put in single quotes, where sh interprets nothing, and each
 * embedded ' becomes '\''. NUL cannot travel in an sh argument and is refused.
 */
export function shQuote(s: string): string {
  if (s.includes("\0")) throw new Error("an sh argument cannot contain a NUL byte");
  if (SAFE_WORD.test(s)) return s;
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/**
 * Renders steps as a POSIX sh script made only of calls to the step functions, one call
 * per line (an argument with a newline continues inside its quotes).
 */
export function renderPlan(steps: readonly Step[]): string {
  return steps
    .map((s, i) => {
      checkStep(s, i);
      return [s.fn, ...s.args.map(shQuote)].join(" ");
    })
    .join("\n")
    .concat("\n");
}
