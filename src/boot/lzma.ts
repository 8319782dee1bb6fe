/**
 * LZMA and LZMA2 decoding for the .xz container (xz.ts), written from the
 * LZMA specification (lzma-specification.txt in the LZMA SDK) and the LZMA2
 * chunk format of XZ Utils.
 *
 * Implements: the range decoder; the LZMA model (literals with lc/lp context,
 * matches, the four repeat distances, short reps, length and distance coders);
 * LZMA2 chunks: end marker, uncompressed chunks with and without a dictionary
 * reset, LZMA chunks with every reset level (none, state, state + properties,
 * state + properties + dictionary), the lc + lp <= 4 rule and the
 * dictionary-size limit on match distances.
 *
 * Not implemented: the legacy .lzma ("LZMA alone") container, end-of-payload
 * markers (invalid in LZMA2), preset dictionaries, and streaming: the whole
 * output lives in one growable buffer which is also the dictionary, so match
 * copies read straight back from the output.
 *
 * Every size read from the input is checked; corrupt input throws LzmaError,
 * which xz.ts turns into XzError.
 */

export class LzmaError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LzmaError';
  }
}

// ---- Range coder ----------------------------------------------------------
const PROB_BITS = 11; // probabilities are 11-bit fixed point
const PROB_ONE = 1 << PROB_BITS;
const PROB_INIT = PROB_ONE >>> 1; // 0.5
const PROB_MOVE_BITS = 5; // adaptation speed
const RC_TOP_MASK = ~((1 << 24) - 1); // normalise when the range drops below 2^24
// The range and code are unsigned 32-bit values held in int32 variables (so
// that V8 keeps them as machine integers); unsigned comparisons flip the sign bit.
const SIGN = 1 << 31;
const RC_INIT_BYTES = 5; // a zero byte then the 32-bit big-endian code

// ---- LZMA model -----------------------------------------------------------
const NUM_STATES = 12;
const LIT_STATES = 7; // states 0..6: the previous symbol was a literal
const POS_BITS_MAX = 4; // pb <= 4
const POS_STATES_MAX = 1 << POS_BITS_MAX;
const MATCH_LEN_MIN = 2;
const COPY_LOOP_MAX = 24; // shorter matches are copied byte by byte, longer ones with copyWithin
const LITERAL_CODER_SIZE = 0x300; // 0x100 plain + 2 * 0x100 "matched" probabilities
const LC_LP_MAX = 4; // LZMA2: lc + lp <= 4
const PROPS_MAX = 9 * 5 * 5; // props byte = (pb * 5 + lp) * 9 + lc

// Length coder: choice, choice2, low[posState][8], mid[posState][8], high[256].
const LEN_LOW_BITS = 3;
const LEN_MID_BITS = 3;
const LEN_HIGH_BITS = 8;
const LEN_LOW_SYMBOLS = 1 << LEN_LOW_BITS;
const LEN_MID_SYMBOLS = 1 << LEN_MID_BITS;
const LEN_CHOICE = 0;
const LEN_CHOICE2 = 1;
const LEN_LOW = 2;
const LEN_MID = LEN_LOW + (POS_STATES_MAX << LEN_LOW_BITS);
const LEN_HIGH = LEN_MID + (POS_STATES_MAX << LEN_MID_BITS);
const LEN_PROBS = LEN_HIGH + (1 << LEN_HIGH_BITS);

// Distance coder: a 6-bit slot per length state, then reverse bit trees or
// direct bits plus 4 "align" bits.
const LEN_TO_POS_STATES = 4;
const POS_SLOT_BITS = 6;
const START_POS_MODEL = 4; // slots below this are the distance itself
const END_POS_MODEL = 14; // slots from here on use direct + align bits
const FULL_DISTANCES = 1 << (END_POS_MODEL >>> 1);
const ALIGN_BITS = 4;
const END_MARKER_DISTANCE = 0xffffffff;

// ---- LZMA2 chunks ---------------------------------------------------------
const CHUNK_END = 0x00;
const CHUNK_COPY_RESET_DICT = 0x01;
const CHUNK_COPY = 0x02;
const CHUNK_LZMA = 0x80; // 1rru uuuu: rr = reset level, u = size bits 16..20
const CHUNK_RESET_SHIFT = 5;
const RESET_STATE = 1;
const RESET_PROPS = 2; // state + new properties byte
const RESET_DICT = 3; // state + new properties + dictionary
const CHUNK_SIZE_HIGH_MASK = 0x1f;
const DICT_SIZE_PROP_MAX = 40; // 40 means 4 GiB - 1
const DICT_SIZE_PROP_RESERVED = 0xc0;

/** LZMA2 dictionary size from the filter's one-byte property. */
export function lzma2DictSize(prop: number): number {
  if ((prop & DICT_SIZE_PROP_RESERVED) !== 0 || prop > DICT_SIZE_PROP_MAX) {
    throw new LzmaError(`LZMA2: bad dictionary size property 0x${prop.toString(16)}`);
  }
  if (prop === DICT_SIZE_PROP_MAX) return 0xffffffff;
  return (2 | (prop & 1)) * 2 ** ((prop >>> 1) + 11);
}

/** The decoded output, which is also the LZMA dictionary. Grows geometrically, never beyond `max`. */
export class OutputBuffer {
  buf: Uint8Array;
  len = 0;

  constructor(initial: number, readonly max: number) {
    this.buf = allocate(Math.min(initial, max));
  }

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    if (need > this.max) throw new LzmaError(`output exceeds maxOutput (${this.max} bytes)`);
    const grown = allocate(Math.min(this.max, Math.max(need, this.buf.length * 2)));
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }
}

function allocate(size: number): Uint8Array {
  try {
    return new Uint8Array(size);
  } catch (e) {
    throw new LzmaError(`cannot allocate ${size} bytes of output`, { cause: e });
  }
}

function truncatedChunk(): LzmaError {
  return new LzmaError('LZMA: compressed chunk is truncated');
}

/** LZMA decoder state that persists across LZMA2 chunks. */
class LzmaDecoder {
  // Range decoder over input[inPos, inEnd).
  private input: Uint8Array = new Uint8Array(0);
  private inPos = 0;
  private inEnd = 0;
  private range = 0;
  private code = 0;

  // Properties.
  private lc = 0;
  private lp = 0;
  private pb = 0;

  // State machine and the four most recent distances (0-based: distance - 1).
  private state = 0;
  private rep0 = 0;
  private rep1 = 0;
  private rep2 = 0;
  private rep3 = 0;

  // Dictionary: output bytes since the last reset, limited to dictSize.
  dictStart = 0;
  dictSize = 0;

  // Probabilities.
  private readonly isMatch = new Uint16Array(NUM_STATES << POS_BITS_MAX);
  private readonly isRep = new Uint16Array(NUM_STATES);
  private readonly isRepG0 = new Uint16Array(NUM_STATES);
  private readonly isRepG1 = new Uint16Array(NUM_STATES);
  private readonly isRepG2 = new Uint16Array(NUM_STATES);
  private readonly isRep0Long = new Uint16Array(NUM_STATES << POS_BITS_MAX);
  private readonly posSlot = new Uint16Array(LEN_TO_POS_STATES << POS_SLOT_BITS);
  private readonly posSpecial = new Uint16Array(FULL_DISTANCES - END_POS_MODEL);
  private readonly align = new Uint16Array(1 << ALIGN_BITS);
  private readonly matchLen = new Uint16Array(LEN_PROBS);
  private readonly repLen = new Uint16Array(LEN_PROBS);
  private readonly literal = new Uint16Array(LITERAL_CODER_SIZE << LC_LP_MAX);

  constructor(private readonly out: OutputBuffer) {}

  /** Sets lc/lp/pb from an LZMA properties byte. */
  setProps(props: number): void {
    if (props >= PROPS_MAX) throw new LzmaError(`LZMA: bad properties byte 0x${props.toString(16)}`);
    const lc = props % 9;
    const lp = Math.floor(props / 9) % 5;
    if (lc + lp > LC_LP_MAX) throw new LzmaError(`LZMA2: lc + lp > ${LC_LP_MAX} (lc=${lc}, lp=${lp})`);
    this.lc = lc;
    this.lp = lp;
    this.pb = Math.floor(props / 45);
  }

  resetState(): void {
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
    for (const p of [this.isMatch, this.isRep, this.isRepG0, this.isRepG1, this.isRepG2, this.isRep0Long,
      this.posSlot, this.posSpecial, this.align, this.matchLen, this.repLen]) p.fill(PROB_INIT);
    this.literal.fill(PROB_INIT, 0, LITERAL_CODER_SIZE << (this.lc + this.lp));
  }

  /** Decodes one LZMA chunk: input[inStart, inEnd) must produce output exactly up to outEnd. */
  decodeChunk(input: Uint8Array, inStart: number, inEnd: number, outEnd: number): void {
    if (inEnd - inStart < RC_INIT_BYTES || input[inStart] !== 0) throw new LzmaError('LZMA: bad range coder header');
    this.input = input;
    this.code = (input[inStart + 1] << 24) | (input[inStart + 2] << 16) | (input[inStart + 3] << 8) | input[inStart + 4];
    this.range = -1; // 0xffffffff
    this.inPos = inStart + RC_INIT_BYTES;
    this.inEnd = inEnd;
    this.run(outEnd);
    if (this.inPos !== inEnd || this.code !== 0) throw new LzmaError('LZMA: chunk does not end cleanly');
  }

  private normalize(): void {
    if (this.inPos >= this.inEnd) throw truncatedChunk();
    this.range <<= 8;
    this.code = (this.code << 8) | this.input[this.inPos++];
  }

  /** Decodes one bit with the adaptive probability probs[i]. */
  private bit(probs: Uint16Array, i: number): number {
    const p = probs[i];
    const bound = Math.imul(this.range >>> PROB_BITS, p);
    let b: number;
    if ((this.code ^ SIGN) < (bound ^ SIGN)) {
      this.range = bound;
      probs[i] = p + ((PROB_ONE - p) >>> PROB_MOVE_BITS);
      b = 0;
    } else {
      this.range = (this.range - bound) | 0;
      this.code = (this.code - bound) | 0;
      probs[i] = p - (p >>> PROB_MOVE_BITS);
      b = 1;
    }
    if ((this.range & RC_TOP_MASK) === 0) this.normalize();
    return b;
  }

  /** `count` bits with fixed probability 0.5, most significant first. */
  private direct(count: number): number {
    let r = 0;
    for (; count > 0; count--) {
      this.range >>>= 1;
      let b = 0;
      if ((this.code ^ SIGN) >= (this.range ^ SIGN)) {
        this.code = (this.code - this.range) | 0;
        b = 1;
      }
      r = (r << 1) | b;
      if ((this.range & RC_TOP_MASK) === 0) this.normalize();
    }
    return r;
  }

  /**
   * A `bits`-bit symbol from the bit tree at probs[off + 1 ...], most
   * significant bit first, or least significant first if `reverse`.
   */
  private tree(probs: Uint16Array, off: number, bits: number, reverse = false): number {
    let m = 1;
    for (let n = 0; n < bits; n++) m = (m << 1) | this.bit(probs, off + m);
    if (!reverse) return m - (1 << bits);
    let r = 0; // m is 1 followed by the bits in decoding order: reverse them
    for (let n = 0; n < bits; n++, m >>>= 1) r = (r << 1) | (m & 1);
    return r;
  }

  /** A match length minus MATCH_LEN_MIN (0..271). */
  private length(probs: Uint16Array, posState: number): number {
    if (this.bit(probs, LEN_CHOICE) === 0) return this.tree(probs, LEN_LOW + (posState << LEN_LOW_BITS), LEN_LOW_BITS);
    if (this.bit(probs, LEN_CHOICE2) === 0) {
      return LEN_LOW_SYMBOLS + this.tree(probs, LEN_MID + (posState << LEN_MID_BITS), LEN_MID_BITS);
    }
    return LEN_LOW_SYMBOLS + LEN_MID_SYMBOLS + this.tree(probs, LEN_HIGH, LEN_HIGH_BITS);
  }

  /** A match distance minus one, for a match of length len + MATCH_LEN_MIN. */
  private distance(len: number): number {
    const lenState = len < LEN_TO_POS_STATES ? len : LEN_TO_POS_STATES - 1;
    const slot = this.tree(this.posSlot, lenState << POS_SLOT_BITS, POS_SLOT_BITS);
    if (slot < START_POS_MODEL) return slot;
    const directBits = (slot >>> 1) - 1;
    const base = ((2 | (slot & 1)) << directBits) >>> 0;
    if (slot < END_POS_MODEL) return base + this.tree(this.posSpecial, base - slot - 1, directBits, true);
    return base + this.direct(directBits - ALIGN_BITS) * (1 << ALIGN_BITS) + this.tree(this.align, 0, ALIGN_BITS, true);
  }

  /** The symbol loop: decodes until the output reaches outEnd. */
  private run(outEnd: number): void {
    const out = this.out.buf;
    const { isMatch, literal: lit, dictStart, dictSize, lc } = this;
    const lpMask = (1 << this.lp) - 1;
    const pbMask = (1 << this.pb) - 1;
    let { state, rep0, rep1, rep2, rep3 } = this;
    let pos = this.out.len;

    while (pos < outEnd) {
      const posState = (pos - dictStart) & pbMask;
      if (this.bit(isMatch, (state << POS_BITS_MAX) | posState) === 0) {
        // Literal, coded in the context of the previous byte and the position.
        const prev = pos > dictStart ? out[pos - 1] : 0;
        const base = ((((pos - dictStart) & lpMask) << lc) + (prev >>> (8 - lc))) * LITERAL_CODER_SIZE;
        let sym = 1;
        if (state >= LIT_STATES) {
          // After a match, the byte at rep0 steers the probabilities until the first mismatching bit.
          let matchByte = out[pos - rep0 - 1];
          do {
            const matchBit = (matchByte >>> 7) & 1;
            matchByte <<= 1;
            const b = this.bit(lit, base + 0x100 + (matchBit << 8) + sym);
            sym = (sym << 1) | b;
            if (b !== matchBit) break;
          } while (sym < 0x100);
        }
        while (sym < 0x100) sym = (sym << 1) | this.bit(lit, base + sym);
        out[pos++] = sym;
        state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      let len: number;
      if (this.bit(this.isRep, state) === 0) {
        // Match with a new distance.
        len = this.length(this.matchLen, posState);
        state = state < LIT_STATES ? 7 : 10;
        const dist = this.distance(len);
        if (dist === END_MARKER_DISTANCE) throw new LzmaError('LZMA: unexpected end marker');
        rep3 = rep2;
        rep2 = rep1;
        rep1 = rep0;
        rep0 = dist;
      } else {
        // Match with one of the four recent distances.
        if (this.bit(this.isRepG0, state) === 0) {
          if (this.bit(this.isRep0Long, (state << POS_BITS_MAX) | posState) === 0) {
            // "Short rep": one byte from distance rep0.
            if (rep0 >= pos - dictStart) throw new LzmaError('LZMA: match distance beyond the dictionary');
            state = state < LIT_STATES ? 9 : 11;
            out[pos] = out[pos - rep0 - 1];
            pos++;
            continue;
          }
        } else {
          let dist: number;
          if (this.bit(this.isRepG1, state) === 0) {
            dist = rep1;
          } else {
            if (this.bit(this.isRepG2, state) === 0) {
              dist = rep2;
            } else {
              dist = rep3;
              rep3 = rep2;
            }
            rep2 = rep1;
          }
          rep1 = rep0;
          rep0 = dist;
        }
        len = this.length(this.repLen, posState);
        state = state < LIT_STATES ? 8 : 11;
      }

      // Copy len + MATCH_LEN_MIN bytes from distance rep0 + 1; the source may overlap the destination.
      if (rep0 >= pos - dictStart || rep0 >= dictSize) throw new LzmaError('LZMA: match distance beyond the dictionary');
      const n = len + MATCH_LEN_MIN;
      if (n > outEnd - pos) throw new LzmaError('LZMA: match runs past the end of the chunk');
      let src = pos - rep0 - 1;
      const end = pos + n;
      if (n < COPY_LOOP_MAX) {
        while (pos < end) out[pos++] = out[src++];
      } else if (rep0 === 0) {
        out.fill(out[src], pos, end); // a run of one byte
        pos = end;
      } else {
        // Overlapping copies repeat the rep0 + 1 bytes before pos; each step can copy what the last one wrote.
        while (pos < end) {
          const k = Math.min(end - pos, pos - src);
          out.copyWithin(pos, src, src + k);
          pos += k;
        }
      }
    }

    this.out.len = pos;
    this.state = state;
    this.rep0 = rep0;
    this.rep1 = rep1;
    this.rep2 = rep2;
    this.rep3 = rep3;
  }
}

/** Decodes LZMA2 data (one .xz block's worth) into an OutputBuffer. */
export class Lzma2Decoder {
  private readonly lzma: LzmaDecoder;

  constructor(private readonly out: OutputBuffer) {
    this.lzma = new LzmaDecoder(out);
  }

  /**
   * Decodes the LZMA2 data starting at input[pos], reading no further than
   * `end`, and returns the position just after its end marker.
   */
  decode(input: Uint8Array, pos: number, end: number, dictSize: number): number {
    const { lzma, out } = this;
    lzma.dictSize = dictSize;
    let needDictReset = true;
    let needProps = true;
    for (;;) {
      if (pos >= end) throw new LzmaError('LZMA2: truncated data');
      const control = input[pos++];
      if (control === CHUNK_END) return pos;

      if (control === CHUNK_COPY_RESET_DICT || control >= (CHUNK_LZMA | (RESET_DICT << CHUNK_RESET_SHIFT))) {
        lzma.dictStart = out.len;
        needDictReset = false;
        needProps = true; // the next LZMA chunk must bring properties
      } else if (needDictReset) {
        throw new LzmaError('LZMA2: first chunk does not reset the dictionary');
      }

      if (control < CHUNK_LZMA) {
        if (control > CHUNK_COPY) throw new LzmaError(`LZMA2: bad chunk control byte 0x${control.toString(16)}`);
        if (end - pos < 2) throw new LzmaError('LZMA2: truncated chunk header');
        const size = ((input[pos] << 8) | input[pos + 1]) + 1;
        pos += 2;
        if (end - pos < size) throw new LzmaError('LZMA2: truncated uncompressed chunk');
        out.reserve(size);
        out.buf.set(input.subarray(pos, pos + size), out.len);
        out.len += size;
        pos += size;
        continue;
      }

      if (end - pos < 4) throw new LzmaError('LZMA2: truncated chunk header');
      const unpacked = (control & CHUNK_SIZE_HIGH_MASK) * 0x10000 + ((input[pos] << 8) | input[pos + 1]) + 1;
      const packed = ((input[pos + 2] << 8) | input[pos + 3]) + 1;
      pos += 4;
      const reset = (control >>> CHUNK_RESET_SHIFT) & 3;
      if (reset >= RESET_PROPS) {
        if (pos >= end) throw new LzmaError('LZMA2: truncated chunk header');
        lzma.setProps(input[pos++]);
        needProps = false;
      } else if (needProps) {
        throw new LzmaError('LZMA2: LZMA chunk without properties after a dictionary reset');
      }
      if (reset >= RESET_STATE) lzma.resetState();
      if (end - pos < packed) throw new LzmaError('LZMA2: truncated LZMA chunk');
      out.reserve(unpacked);
      lzma.decodeChunk(input, pos, pos + packed, out.len + unpacked);
      pos += packed;
    }
  }
}
