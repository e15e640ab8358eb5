/**
 * What a master playlist needs to know of one HLS rendition, read from the files the encode
 * wrote: its bandwidth from the media playlist's segment lengths and the segments' sizes, and its
 * RFC 6381 codec strings from the init segment's decoder configuration boxes. Pure: bytes and
 * text in, figures out.
 */

/** One segment of a media playlist: its `#EXTINF` length and its URI (a name beside the playlist). */
export interface MediaSegment { duration_s: number; uri: string }

/** The segments a VOD media playlist lists, in order. URIs with a slash or `..` are not the encode's own and are left out. */
export function mediaSegments(playlist: string): MediaSegment[] {
  const out: MediaSegment[] = [];
  let pending: number | undefined;
  for (const raw of playlist.split('\n')) {
    const line = raw.trim();
    const inf = /^#EXTINF:([\d.]+)/.exec(line);
    if (inf) { pending = Number(inf[1]); continue; }
    if (!line || line.startsWith('#') || pending === undefined) continue;
    if (/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(line) && Number.isFinite(pending) && pending > 0) out.push({ duration_s: pending, uri: line });
    pending = undefined;
  }
  return out;
}

/** BANDWIDTH (the highest bit rate of any segment) and AVERAGE-BANDWIDTH, in bit/s, of segments of these sizes. */
export function segmentBandwidth(segments: readonly { duration_s: number; bytes: number }[]): { peak_bps: number; average_bps: number } | undefined {
  if (segments.length === 0) return undefined;
  let peak = 0, bytes = 0, secs = 0;
  for (const s of segments) {
    peak = Math.max(peak, (s.bytes * 8) / s.duration_s);
    bytes += s.bytes;
    secs += s.duration_s;
  }
  return { peak_bps: Math.ceil(peak), average_bps: Math.ceil((bytes * 8) / secs) };
}

/**
 * The RFC 6381 codec strings of an fMP4 init segment's tracks (`avc1.64001f`, `hvc1.1.6.L93.B0`,
 * `mp4a.40.2`), comma-separated, or undefined when any track's codec is not one this reads
 * (VP9, AV1, …): a CODECS attribute must name every codec or be left out.
 */
export function rfc6381Codecs(init: Uint8Array): string | undefined {
  const buf = Buffer.from(init.buffer, init.byteOffset, init.byteLength);
  const entries = sampleEntries(buf);
  if (entries.length === 0) return undefined;
  const codecs: string[] = [];
  for (const { type, body } of entries) {
    const c = type === 'avc1' || type === 'avc3' ? avc(type, body)
      : type === 'hvc1' || type === 'hev1' ? hevc(type, body)
        : type === 'mp4a' ? mp4a(body)
          : type === 'ac-3' || type === 'ec-3' ? type : undefined;
    if (!c) return undefined;
    codecs.push(c);
  }
  return codecs.join(',');
}

/** Each track's sample entry (moov/trak/mdia/minf/stbl/stsd), with the bytes after its fourcc. */
function sampleEntries(buf: Buffer): { type: string; body: Buffer }[] {
  const out: { type: string; body: Buffer }[] = [];
  const walk = (b: Buffer, path: string[]) => {
    for (const box of boxes(b)) {
      if (box.type === 'stsd') {
        if (box.body.length < 8) continue;
        for (const e of boxes(box.body.subarray(8))) out.push(e);
      } else if (['moov', 'trak', 'mdia', 'minf', 'stbl'].includes(box.type) && path.length < 6) walk(box.body, [...path, box.type]);
    }
  };
  walk(buf, []);
  return out;
}

function boxes(b: Buffer): { type: string; body: Buffer }[] {
  const out: { type: string; body: Buffer }[] = [];
  let at = 0;
  while (at + 8 <= b.length) {
    const size = b.readUInt32BE(at);
    const type = b.toString('latin1', at + 4, at + 8);
    if (size < 8 || at + size > b.length) break; // 0 (to the end), 1 (64-bit) and truncated boxes: none in an init segment's metadata
    out.push({ type, body: b.subarray(at + 8, at + size) });
    at += size;
  }
  return out;
}

/** A visual sample entry's child boxes start after 78 bytes of fixed fields; an audio one's after 28. */
const childBox = (entry: Buffer, skip: number, type: string) => boxes(entry.subarray(skip)).find((x) => x.type === type)?.body;
const hex2 = (n: number) => n.toString(16).padStart(2, '0');

function avc(type: string, entry: Buffer): string | undefined {
  const c = childBox(entry, 78, 'avcC');
  return c && c.length >= 4 ? `${type}.${hex2(c[1])}${hex2(c[2])}${hex2(c[3])}` : undefined;
}

/** ISO/IEC 14496-15 annex E: hvc1.[space]profile.compat(reversed, hex).tier+level[.constraints]. */
function hevc(type: string, entry: Buffer): string | undefined {
  const c = childBox(entry, 78, 'hvcC');
  if (!c || c.length < 13) return undefined;
  const space = c[1] >> 6, tier = (c[1] >> 5) & 1, profile = c[1] & 0x1f;
  let compat = c.readUInt32BE(2), reversed = 0;
  for (let i = 0; i < 32; i++) { reversed = (reversed << 1) | (compat & 1); compat >>>= 1; }
  const constraints = [...c.subarray(6, 12)];
  while (constraints.length && constraints.at(-1) === 0) constraints.pop();
  const level = c[12];
  return [`${type}.${space ? String.fromCharCode(64 + space) : ''}${profile}`, (reversed >>> 0).toString(16).toUpperCase(), `${tier ? 'H' : 'L'}${level}`, ...constraints.map((x) => x.toString(16).toUpperCase())].join('.');
}

/** mp4a.OTI[.AOT] from the esds box: MPEG-4 audio (0x40) names its audio object type (2: AAC-LC); MP3 is mp4a.40.34. */
function mp4a(entry: Buffer): string | undefined {
  const esds = childBox(entry, 28, 'esds');
  if (!esds) return undefined;
  let at = 4; // version and flags
  const descriptor = (tag: number): number | undefined => {
    if (esds[at] !== tag) return undefined;
    at++;
    let len = 0;
    for (let i = 0; i < 4 && at < esds.length; i++) {
      const b = esds[at++];
      len = (len << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    return len;
  };
  if (descriptor(0x03) === undefined) return undefined;
  const flags = esds[at + 2];
  at += 3;
  if (flags & 0x80) at += 2;
  if (flags & 0x40) at += 1 + esds[at];
  if (flags & 0x20) at += 2;
  if (descriptor(0x04) === undefined) return undefined;
  const oti = esds[at];
  at += 13;
  if (oti === 0x69 || oti === 0x6b) return 'mp4a.40.34';
  if (oti !== 0x40) return undefined;
  if (descriptor(0x05) === undefined) return undefined;
  let aot = esds[at] >> 3;
  if (aot === 31) aot = 32 + (((esds[at] & 7) << 3) | (esds[at + 1] >> 5));
  return `mp4a.40.${aot}`;
}
