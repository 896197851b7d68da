// The hot loops of weight statistics as WebAssembly SIMD (two float64 lanes), assembled here from opcodes. Each weight
// needs ten roundings (5 bit widths × 2 granularities); in scalar JavaScript they held the whole statistic near
// 300 MB/s on one core, and f64x2 with a native round-half-to-even runs the same float64 arithmetic at 0.9–1 GB/s.
// Every kernel reads float32 weights from a window of linear memory that the caller fills, and adds into float64
// accumulator slots at the start of memory, so the caller reads results after its last call.
import { QUANT_BITS } from '../../protocol/records';
import { quantLevels } from './weightQuant';

type Code = number | Code[];

const I32 = 0x7f;
const F32 = 0x7d;
const F64 = 0x7c;
const V128 = 0x7b;
type ValType = typeof I32 | typeof F32 | typeof F64 | typeof V128;

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    if ((value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

const flat = (code: Code): number[] => (Array.isArray(code) ? code.flatMap(flat) : [code]);
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, bytes: number[]): number[] => [id, ...uleb(bytes.length), ...bytes];
const name = (text: string): number[] => vec([...Buffer.from(text, 'utf8')].map((b) => [b]));

// Memory immediates: alignment hint (log2 bytes) and offset. Hints never exceed natural alignment; 0 is always valid.
const mem = (align: number, offset = 0): number[] => [align, ...uleb(offset)];
const simd = (opcode: number, ...immediates: number[]): number[] => [0xfd, ...uleb(opcode), ...immediates];

/** The instructions the kernels use (names follow the WebAssembly text format). */
const op = {
  i32: (v: number) => [0x41, ...sleb(v)],
  f32: (v: number) => [0x43, ...new Uint8Array(new Float32Array([v]).buffer)],
  f64: (v: number) => [0x44, ...new Uint8Array(new Float64Array([v]).buffer)],
  select: 0x1b,
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32And: 0x71, i32Shl: 0x74,
  i32LtS: 0x48, i32LtU: 0x49, i32GeU: 0x4f,
  i32Load: [0x28, ...mem(2)], i32Store: [0x36, ...mem(2)],
  f32Load: [0x2a, ...mem(2)], f32Store: [0x38, ...mem(2)],
  f64Load: [0x2b, ...mem(3)], f64Store: [0x39, ...mem(3)],
  f32Abs: 0x8b, f32Max: 0x97,
  f64Add: 0xa0, f64Sub: 0xa1, f64Mul: 0xa2, f64Min: 0xa4, f64Max: 0xa5,
  f64Gt: 0x64, f64PromoteF32: 0xbb, f64ConvertI64S: 0xb9, i32TruncSatF64S: [0xfc, 0x02],
  v128Load: simd(0x00, ...mem(0)), v128Store: simd(0x0b, ...mem(0)),
  v128Load32Zero: simd(0x5c, ...mem(0)), v128Load64Zero: simd(0x5d, ...mem(0)),
  f32x4ExtractLane: (lane: number) => simd(0x1f, lane),
  f32x4Splat: simd(0x13), f32x4Abs: simd(0xe0), f32x4Pmin: simd(0xea), f32x4Pmax: simd(0xeb),
  f64x2Splat: simd(0x14),
  f64x2ExtractLane: (lane: number) => simd(0x21, lane),
  i32x4ExtractLane: (lane: number) => simd(0x1b, lane),
  i32x4ReplaceLane: (lane: number) => simd(0x1c, lane),
  i32x4Splat: simd(0x11), i32x4MinS: simd(0xb6), i32x4Shl: simd(0xab), i32x4Add: simd(0xae),
  i64x2ExtractLane: (lane: number) => simd(0x1d, lane),
  f64x2Add: simd(0xf0), f64x2Sub: simd(0xf1), f64x2Mul: simd(0xf2), f64x2Nearest: simd(0x94), f64x2Gt: simd(0x4a),
  f64x2PromoteLowF32x4: simd(0x5f), i32x4TruncSatF64x2SZero: simd(0xfc), i64x2Sub: simd(0xd1),
};

/** `while (a < b) body` on unsigned i32 operands. */
const whileLt = (a: Code, b: Code, body: Code): Code => [0x02, 0x40, 0x03, 0x40, a, b, op.i32GeU, 0x0d, 1, body, 0x0c, 0, 0x0b, 0x0b];
const ifThen = (condition: Code, body: Code): Code => [condition, 0x04, 0x40, body, 0x0b];

interface KernelSpec {
  params: Record<string, ValType>;
  locals: Record<string, ValType>;
  result?: ValType;
  body: (get: (n: string) => Code, set: (n: string) => Code) => Code;
}

function assemble(kernels: Record<string, KernelSpec>, minPages: number): Uint8Array<ArrayBuffer> {
  const entries = Object.entries(kernels);
  const types: number[][] = [];
  const bodies: number[][] = [];
  for (const [, spec] of entries) {
    const paramTypes = Object.values(spec.params);
    types.push([0x60, ...vec(paramTypes.map((t) => [t])), ...vec(spec.result ? [[spec.result]] : [])]);
    const index = new Map<string, number>();
    for (const n of [...Object.keys(spec.params), ...Object.keys(spec.locals)]) index.set(n, index.size);
    const slot = (n: string): number => {
      const i = index.get(n);
      if (i === undefined) throw new Error(`kernel uses undeclared local ${n}`);
      return i;
    };
    const code = flat(spec.body((n) => [0x20, ...uleb(slot(n))], (n) => [0x21, ...uleb(slot(n))]));
    const locals = vec(Object.values(spec.locals).map((t) => [1, t]));
    const fn = [...locals, ...code, 0x0b];
    bodies.push([...uleb(fn.length), ...fn]);
  }
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(3, vec(entries.map((_, i) => uleb(i)))),
    ...section(5, vec([[0x00, ...uleb(minPages)]])),
    ...section(7, vec([[...name('memory'), 0x02, 0x00], ...entries.map(([n], i) => [...name(n), 0x00, ...uleb(i)])])),
    ...section(10, vec(bodies)),
  ]);
}

/** Byte offsets of the float64 accumulator slots, at the start of memory. */
export const SLOT = {
  min: 0,
  max: 8,
  shiftedSum: 16,
  shiftedSumSq: 24,
  m2: 32,
  m4: 40,
  outliers: 48,
  energy: 56,
  /** QUANT_BITS.length slots each: Σ(w − ŵ)² · levels² per bit width. */
  errChannel: 64,
  errGroup: 64 + 8 * QUANT_BITS.length,
} as const;
/** First byte after the accumulators, 16-aligned. */
export const SLOTS_END = 256;
/** Histogram tables moments2 counts into. */
export const HISTOGRAM_TABLES = 4;

const LEVELS = QUANT_BITS.map(quantLevels);

/** Horizontal sum of an f64x2 local added into an accumulator slot. */
const addToSlot = (address: Code, vector: Code): Code => [
  address, address, op.f64Load, vector, op.f64x2ExtractLane(0), vector, op.f64x2ExtractLane(1), op.f64Add, op.f64Add, op.f64Store,
];
/** Byte address after the first `len` floats from `ptr`, rounded down to whole groups of `lanes` (a power of two). */
const floatsEnd = (get: (n: string) => Code, lanes: number): Code => [get('ptr'), get('len'), op.i32(-lanes), op.i32And, op.i32(2), op.i32Shl, op.i32Add];

const kernels: Record<string, KernelSpec> = {
  /** min, max, Σ(w − shift), Σ(w − shift)² over len floats. */
  moments1: {
    params: { ptr: I32, len: I32, shift: F64 },
    locals: { end: I32, end4: I32, lo: V128, hi: V128, x: V128, vmin: V128, vmax: V128, sum: V128, sumSq: V128, s: V128, w: F64, d: F64, smin: F64, smax: F64 },
    body: (get, set) => [
      floatsEnd(get, 1), set('end'),
      floatsEnd(get, 4), set('end4'),
      get('shift'), op.f64x2Splat, set('s'),
      op.f32(Infinity), op.f32x4Splat, set('vmin'),
      op.f32(-Infinity), op.f32x4Splat, set('vmax'),
      whileLt(get('ptr'), get('end4'), [
        get('ptr'), op.v128Load, set('x'),
        // pmin/pmax are single instructions; a NaN they skip still reaches the sum, which the caller checks.
        get('x'), get('vmin'), op.f32x4Pmin, set('vmin'),
        get('vmax'), get('x'), op.f32x4Pmax, set('vmax'),
        get('ptr'), op.v128Load64Zero, op.f64x2PromoteLowF32x4, get('s'), op.f64x2Sub, set('lo'),
        get('ptr'), op.i32(8), op.i32Add, op.v128Load64Zero, op.f64x2PromoteLowF32x4, get('s'), op.f64x2Sub, set('hi'),
        get('sum'), get('lo'), op.f64x2Add, get('hi'), op.f64x2Add, set('sum'),
        get('sumSq'), get('lo'), get('lo'), op.f64x2Mul, op.f64x2Add, get('hi'), get('hi'), op.f64x2Mul, op.f64x2Add, set('sumSq'),
        get('ptr'), op.i32(16), op.i32Add, set('ptr'),
      ]),
      [0, 1, 2, 3].map((lane) => [get('vmin'), op.f32x4ExtractLane(lane), op.f64PromoteF32]), op.f64Min, op.f64Min, op.f64Min, set('smin'),
      [0, 1, 2, 3].map((lane) => [get('vmax'), op.f32x4ExtractLane(lane), op.f64PromoteF32]), op.f64Max, op.f64Max, op.f64Max, set('smax'),
      whileLt(get('ptr'), get('end'), [
        get('ptr'), op.f32Load, op.f64PromoteF32, set('w'),
        get('smin'), get('w'), op.f64Min, set('smin'),
        get('smax'), get('w'), op.f64Max, set('smax'),
        get('w'), get('shift'), op.f64Sub, set('d'),
        op.i32(SLOT.shiftedSum), op.i32(SLOT.shiftedSum), op.f64Load, get('d'), op.f64Add, op.f64Store,
        op.i32(SLOT.shiftedSumSq), op.i32(SLOT.shiftedSumSq), op.f64Load, get('d'), get('d'), op.f64Mul, op.f64Add, op.f64Store,
        get('ptr'), op.i32(4), op.i32Add, set('ptr'),
      ]),
      op.i32(SLOT.min), op.i32(SLOT.min), op.f64Load, get('smin'), op.f64Min, op.f64Store,
      op.i32(SLOT.max), op.i32(SLOT.max), op.f64Load, get('smax'), op.f64Max, op.f64Store,
      addToSlot(op.i32(SLOT.shiftedSum), get('sum')),
      addToSlot(op.i32(SLOT.shiftedSumSq), get('sumSq')),
    ],
  },

  /**
   * Per block of consecutive floats (the first `firstLen` long, then `blockLen` each, the last cut at len):
   * out[k] = max(out[k], max |w|) into consecutive float32 slots from `out` — the absmax of one channel's groups.
   */
  blockAbsMax: {
    params: { ptr: I32, len: I32, firstLen: I32, blockLen: I32, out: I32 },
    locals: { end: I32, blockEnd: I32, quadEnd: I32, m: V128, s: F32 },
    body: (get, set) => [
      floatsEnd(get, 1), set('end'),
      minU32([get('ptr'), get('firstLen'), op.i32(2), op.i32Shl, op.i32Add], get('end')), set('blockEnd'),
      whileLt(get('ptr'), get('end'), [
        op.f32(0), op.f32x4Splat, set('m'),
        get('ptr'), get('blockEnd'), get('ptr'), op.i32Sub, op.i32(-16), op.i32And, op.i32Add, set('quadEnd'),
        whileLt(get('ptr'), get('quadEnd'), [
          get('m'), get('ptr'), op.v128Load, op.f32x4Abs, op.f32x4Pmax, set('m'),
          get('ptr'), op.i32(16), op.i32Add, set('ptr'),
        ]),
        [0, 1, 2, 3].map((lane) => [get('m'), op.f32x4ExtractLane(lane)]), op.f32Max, op.f32Max, op.f32Max, set('s'),
        whileLt(get('ptr'), get('blockEnd'), [
          get('s'), get('ptr'), op.f32Load, op.f32Abs, op.f32Max, set('s'),
          get('ptr'), op.i32(4), op.i32Add, set('ptr'),
        ]),
        get('out'), get('out'), op.f32Load, get('s'), op.f32Max, op.f32Store,
        get('out'), op.i32(4), op.i32Add, set('out'),
        minU32([get('blockEnd'), get('blockLen'), op.i32(2), op.i32Shl, op.i32Add], get('end')), set('blockEnd'),
      ]),
    ],
  },

  /** out[i] = max(out[i], |w[i]|) for len floats: per-column group absmax when each stored row spans the channels. */
  absMaxInto: {
    params: { ptr: I32, len: I32, out: I32 },
    locals: { end: I32, end4: I32 },
    body: (get, set) => [
      floatsEnd(get, 1), set('end'),
      floatsEnd(get, 4), set('end4'),
      whileLt(get('ptr'), get('end4'), [
        get('out'), get('out'), op.v128Load, get('ptr'), op.v128Load, op.f32x4Abs, op.f32x4Pmax, op.v128Store,
        get('ptr'), op.i32(16), op.i32Add, set('ptr'),
        get('out'), op.i32(16), op.i32Add, set('out'),
      ]),
      whileLt(get('ptr'), get('end'), [
        get('out'), get('out'), op.f32Load, get('ptr'), op.f32Load, op.f32Abs, op.f32Max, op.f32Store,
        get('ptr'), op.i32(4), op.i32Add, set('ptr'),
        get('out'), op.i32(4), op.i32Add, set('out'),
      ]),
    ],
  },

  /**
   * Σ(w − mean)², Σ(w − mean)⁴, outliers ((w − mean)² > limitSq), Σw², and the histogram: bin = trunc((w − histMin) ·
   * binsPerUnit) capped at lastBin, counted as u32 into HISTOGRAM_TABLES tables `tableBytes` apart (float i of each
   * quad into table i) so that runs of equal bins do not wait on each other's stores; the caller adds the tables.
   */
  moments2: {
    params: { ptr: I32, len: I32, mean: F64, limitSq: F64, histMin: F64, binsPerUnit: F64, lastBin: I32, tables: I32, tableBytes: I32 },
    locals: {
      end: I32, end2: I32, end4: I32, bin: I32, addr: I32, addresses: V128, vLast: V128, tablesLow: V128, tablesHigh: V128,
      x: V128, d: V128, d2: V128, m2: V128, m4: V128, outliers: V128, energy: V128, vMean: V128, vLimit: V128, vMin: V128, vScale: V128,
      w: F64, sd: F64, sd2: F64,
    },
    body: (get, set) => {
      const increment = (address: Code): Code => [address, set('addr'), get('addr'), get('addr'), op.i32Load, op.i32(1), op.i32Add, op.i32Store];
      const addScalar = (slot: number, value: Code): Code => [op.i32(slot), op.i32(slot), op.f64Load, value, op.f64Add, op.f64Store];
      const step = (address: Code, tables: string): Code => [
        address, op.v128Load64Zero, op.f64x2PromoteLowF32x4, set('x'),
        get('x'), get('vMean'), op.f64x2Sub, set('d'),
        get('d'), get('d'), op.f64x2Mul, set('d2'),
        get('m2'), get('d2'), op.f64x2Add, set('m2'),
        get('m4'), get('d2'), get('d2'), op.f64x2Mul, op.f64x2Add, set('m4'),
        // A true lane compares as all ones, i.e. −1: subtracting counts it.
        get('outliers'), get('d2'), get('vLimit'), op.f64x2Gt, op.i64x2Sub, set('outliers'),
        get('energy'), get('x'), get('x'), op.f64x2Mul, op.f64x2Add, set('energy'),
        // Each lane counts into its own table: byte address = table + 4 · min(bin, lastBin).
        get('x'), get('vMin'), op.f64x2Sub, get('vScale'), op.f64x2Mul, op.i32x4TruncSatF64x2SZero,
        get('vLast'), op.i32x4MinS, op.i32(2), op.i32x4Shl, get(tables), op.i32x4Add, set('addresses'),
        increment([get('addresses'), op.i32x4ExtractLane(0)]),
        increment([get('addresses'), op.i32x4ExtractLane(1)]),
      ];
      const table = (k: number): Code => [get('tables'), get('tableBytes'), op.i32(k), op.i32Mul, op.i32Add];
      return [
        floatsEnd(get, 1), set('end'),
        floatsEnd(get, 2), set('end2'),
        floatsEnd(get, 4), set('end4'),
        get('mean'), op.f64x2Splat, set('vMean'),
        get('limitSq'), op.f64x2Splat, set('vLimit'),
        get('histMin'), op.f64x2Splat, set('vMin'),
        get('binsPerUnit'), op.f64x2Splat, set('vScale'),
        get('lastBin'), op.i32x4Splat, set('vLast'),
        table(0), op.i32x4Splat, table(1), op.i32x4ReplaceLane(1), set('tablesLow'),
        table(2), op.i32x4Splat, table(3), op.i32x4ReplaceLane(1), set('tablesHigh'),
        // Four tables, one per float of a quad: equal bins in a row then do not wait on each other's stores.
        whileLt(get('ptr'), get('end4'), [
          step(get('ptr'), 'tablesLow'),
          step([get('ptr'), op.i32(8), op.i32Add], 'tablesHigh'),
          get('ptr'), op.i32(16), op.i32Add, set('ptr'),
        ]),
        ifThen([get('ptr'), get('end2'), op.i32LtU], [step(get('ptr'), 'tablesLow'), get('ptr'), op.i32(8), op.i32Add, set('ptr')]),
        ifThen([get('ptr'), get('end'), op.i32LtU], [
          get('ptr'), op.f32Load, op.f64PromoteF32, set('w'),
          get('w'), get('mean'), op.f64Sub, set('sd'),
          get('sd'), get('sd'), op.f64Mul, set('sd2'),
          addScalar(SLOT.m2, get('sd2')),
          addScalar(SLOT.m4, [get('sd2'), get('sd2'), op.f64Mul]),
          addScalar(SLOT.energy, [get('w'), get('w'), op.f64Mul]),
          ifThen([get('sd2'), get('limitSq'), op.f64Gt], addScalar(SLOT.outliers, op.f64(1))),
          get('w'), get('histMin'), op.f64Sub, get('binsPerUnit'), op.f64Mul, op.i32TruncSatF64S, set('bin'),
          increment([get('bin'), get('lastBin'), get('bin'), get('lastBin'), op.i32LtS, op.select, op.i32(2), op.i32Shl, get('tables'), op.i32Add]),
        ]),
        addToSlot(op.i32(SLOT.m2), get('m2')),
        addToSlot(op.i32(SLOT.m4), get('m4')),
        addToSlot(op.i32(SLOT.energy), get('energy')),
        op.i32(SLOT.outliers), op.i32(SLOT.outliers), op.f64Load,
        get('outliers'), op.i64x2ExtractLane(0), op.f64ConvertI64S, op.f64Add,
        get('outliers'), op.i64x2ExtractLane(1), op.f64ConvertI64S, op.f64Add, op.f64Store,
      ];
    },
  },

  /**
   * Quantization error of one channel's run at both granularities: one channel scale (1/absmax = channelInverse) and
   * one scale per block (the first `firstLen` floats, then `blockLen` each) read from float64 arrays `groupInverses`
   * and `groupAbsSqs`. Adds absSq · Σ(t − round(t))² per bit width, t = w · inverse · levels[b], which is
   * Σ(w − ŵ)² · levels[b]², into the errChannel and errGroup slots. A block's odd last float is loaded with a zero
   * partner, whose error is 0.
   */
  quantBlocks: {
    params: { ptr: I32, len: I32, firstLen: I32, blockLen: I32, channelInverse: F64, channelAbsSq: F64, groupInverses: I32, groupAbsSqs: I32 },
    locals: { ...quantLocals(), end: I32, blockEnd: I32, pairEnd: I32, channelScale: V128, groupScale: V128 },
    body: (get, set) => {
      const step = (load: Code): Code => [
        get('ptr'), load, op.f64x2PromoteLowF32x4, set('x'),
        get('x'), get('channelScale'), op.f64x2Mul, set('u'),
        quantBody(get, set, 'channel', null),
        get('x'), get('groupScale'), op.f64x2Mul, set('u'),
        quantBody(get, set, 'group', null),
      ];
      return [
        floatsEnd(get, 1), set('end'),
        minU32([get('ptr'), get('firstLen'), op.i32(2), op.i32Shl, op.i32Add], get('end')), set('blockEnd'),
        levelSplats(set),
        get('channelInverse'), op.f64x2Splat, set('channelScale'),
        whileLt(get('ptr'), get('end'), [
          get('groupInverses'), op.f64Load, op.f64x2Splat, set('groupScale'),
          get('ptr'), get('blockEnd'), get('ptr'), op.i32Sub, op.i32(-8), op.i32And, op.i32Add, set('pairEnd'),
          whileLt(get('ptr'), get('pairEnd'), [step(op.v128Load64Zero), get('ptr'), op.i32(8), op.i32Add, set('ptr')]),
          ifThen([get('ptr'), get('blockEnd'), op.i32LtU], [step(op.v128Load32Zero), get('ptr'), op.i32(4), op.i32Add, set('ptr')]),
          foldInto(get, set, 'group', SLOT.errGroup, [get('groupAbsSqs'), op.f64Load]),
          get('groupInverses'), op.i32(8), op.i32Add, set('groupInverses'),
          get('groupAbsSqs'), op.i32(8), op.i32Add, set('groupAbsSqs'),
          minU32([get('blockEnd'), get('blockLen'), op.i32(2), op.i32Shl, op.i32Add], get('end')), set('blockEnd'),
        ]),
        foldInto(get, set, 'channel', SLOT.errChannel, get('channelAbsSq')),
      ];
    },
  },

  /**
   * quantBlocks for stored rows that hold one element of every channel: every float has its own channel and group
   * scale, read from float64 arrays aligned with the floats; the absSq weights are applied per element.
   */
  quantPerElement: {
    params: { ptr: I32, len: I32, channelInverses: I32, channelAbsSqs: I32, groupInverses: I32, groupAbsSqs: I32 },
    locals: { ...quantLocals(), end: I32, pairEnd: I32, channelWeight: V128, groupWeight: V128 },
    body: (get, set) => {
      const step = (load: Code, loadScale: Code): Code => [
        get('ptr'), load, op.f64x2PromoteLowF32x4, set('x'),
        get('x'), get('channelInverses'), loadScale, op.f64x2Mul, set('u'),
        get('channelAbsSqs'), loadScale, set('channelWeight'),
        quantBody(get, set, 'channel', 'channelWeight'),
        get('x'), get('groupInverses'), loadScale, op.f64x2Mul, set('u'),
        get('groupAbsSqs'), loadScale, set('groupWeight'),
        quantBody(get, set, 'group', 'groupWeight'),
      ];
      const advance = (name: string, bytes: number): Code => [get(name), op.i32(bytes), op.i32Add, set(name)];
      return [
        floatsEnd(get, 1), set('end'),
        floatsEnd(get, 2), set('pairEnd'),
        levelSplats(set),
        whileLt(get('ptr'), get('pairEnd'), [
          step(op.v128Load64Zero, op.v128Load),
          advance('ptr', 8), advance('channelInverses', 16), advance('channelAbsSqs', 16),
          advance('groupInverses', 16), advance('groupAbsSqs', 16),
        ]),
        ifThen([get('ptr'), get('end'), op.i32LtU], step(op.v128Load32Zero, op.v128Load64Zero)),
        foldInto(get, set, 'channel', SLOT.errChannel, op.f64(1)),
        foldInto(get, set, 'group', SLOT.errGroup, op.f64(1)),
      ];
    },
  },
};

/** unsigned min of two i32 expressions. */
function minU32(a: Code, b: Code): Code {
  return [a, b, a, b, op.i32LtU, op.select];
}

/** Locals of the quantization kernels: the float pair, its scaled value, and per bit width a level and two sums. */
function quantLocals(): Record<string, ValType> {
  const locals: Record<string, ValType> = { x: V128, u: V128, t: V128, e: V128 };
  LEVELS.forEach((level, b) => {
    if (level !== 1) locals[`level${b}`] = V128;
    locals[`channel${b}`] = V128;
    locals[`group${b}`] = V128;
  });
  return locals;
}

function levelSplats(set: (n: string) => Code): Code {
  return LEVELS.map((level, b) => (level === 1 ? [] : [op.f64(level), op.f64x2Splat, set(`level${b}`)]));
}

/** sums[b] += (t − round(t))² (times `weight` per lane when given), t = u · level[b]. */
function quantBody(get: (n: string) => Code, set: (n: string) => Code, sums: string, weight: string | null): Code {
  return LEVELS.map((level, b) => [
    // 2 bits has one level: t is u itself, and the multiply would be by 1.
    level === 1 ? [get('u'), set('t')] : [get('u'), get(`level${b}`), op.f64x2Mul, set('t')],
    get('t'), get('t'), op.f64x2Nearest, op.f64x2Sub, set('e'),
    get(`${sums}${b}`), get('e'), get('e'), op.f64x2Mul, weight === null ? [] : [get(weight), op.f64x2Mul], op.f64x2Add, set(`${sums}${b}`),
  ]);
}

/** slot[first + b] += (both lanes of sums[b]) · factor, then sums[b] = 0. */
function foldInto(get: (n: string) => Code, set: (n: string) => Code, sums: string, first: number, factor: Code): Code {
  return LEVELS.map((_, b) => [
    op.i32(first + 8 * b), op.i32(first + 8 * b), op.f64Load,
    get(`${sums}${b}`), op.f64x2ExtractLane(0), get(`${sums}${b}`), op.f64x2ExtractLane(1), op.f64Add, factor, op.f64Mul,
    op.f64Add, op.f64Store,
    op.f64(0), op.f64x2Splat, set(`${sums}${b}`),
  ]);
}

export interface StatsKernels {
  memory: WebAssembly.Memory;
  moments1(ptr: number, len: number, shift: number): void;
  blockAbsMax(ptr: number, len: number, firstLen: number, blockLen: number, out: number): void;
  absMaxInto(ptr: number, len: number, out: number): void;
  moments2(
    ptr: number, len: number, mean: number, limitSq: number, histMin: number, binsPerUnit: number, lastBin: number,
    tables: number, tableBytes: number,
  ): void;
  quantBlocks(
    ptr: number, len: number, firstLen: number, blockLen: number, channelInverse: number, channelAbsSq: number,
    groupInverses: number, groupAbsSqs: number,
  ): void;
  quantPerElement(ptr: number, len: number, channelInverses: number, channelAbsSqs: number, groupInverses: number, groupAbsSqs: number): void;
}

let instance: StatsKernels | undefined;

/** The kernels, compiled on first use; one instance serves every call (the engine is single-threaded). */
export function statsKernels(): StatsKernels {
  if (!instance) {
    const module = new WebAssembly.Module(assemble(kernels, 1));
    instance = new WebAssembly.Instance(module, {}).exports as unknown as StatsKernels;
  }
  return instance;
}

/** Grows kernel memory to at least `bytes`; views made before must be made again. */
export function ensureMemory(kernelSet: StatsKernels, bytes: number): void {
  const pageBytes = 65536;
  const have = kernelSet.memory.buffer.byteLength;
  if (bytes > have) kernelSet.memory.grow(Math.ceil((bytes - have) / pageBytes));
}
