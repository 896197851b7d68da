// NumPy .npy arrays (format versions 1, 2 and 3): magic, header length, a Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }, then the raw elements.
// The header is parsed as a literal (never evaluated); every problem is a ModelError naming the file.
import { ModelError } from '../errors';
import { numElements } from '../model/tensor';
import { fortranToC, fromLittleEndian, ITEM_BYTES, NUMPY_NAMES, type StoredArray, type StoredDType } from './ndarray';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** numpy itself refuses headers over 10,000 bytes by default; anything near this limit is not a real header. */
const MAX_HEADER_BYTES = 1 << 20;

/** Kind and size after the byte-order character, as numpy writes them (dtype.str). */
const NPY_DTYPES: Readonly<Record<string, StoredDType>> = {
  f8: 'F64', f4: 'F32', f2: 'F16', i8: 'I64', i4: 'I32', i1: 'I8', u1: 'U8', b1: 'BOOL',
};

const SUPPORTED = 'float32, float64, float16, int64, int32, int8, uint8 and bool';

type PyValue = string | number | boolean | null | PyValue[] | Map<string, PyValue>;

/** Recursive-descent reader of the Python literals a .npy header uses: dicts, tuples, lists, str, int, bools. */
class LiteralReader {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly fail: (why: string) => never,
  ) {}

  readAll(): PyValue {
    const value = this.value();
    this.skipSpace();
    if (this.pos !== this.text.length) this.fail(`unexpected text after the dict at character ${this.pos}`);
    return value;
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos])) this.pos++;
  }

  private value(): PyValue {
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === '{') return this.dict();
    if (c === '(') return this.sequence(')');
    if (c === '[') return this.sequence(']');
    if (c === "'" || c === '"') return this.string();
    const word = /^(True|False|None|-?\d+)/.exec(this.text.slice(this.pos, this.pos + 40));
    if (!word) this.fail(`unexpected ${c === undefined ? 'end' : JSON.stringify(c)} at character ${this.pos}`);
    this.pos += word[0].length;
    if (word[0] === 'True') return true;
    if (word[0] === 'False') return false;
    if (word[0] === 'None') return null;
    const n = Number(word[0]);
    if (!Number.isSafeInteger(n)) this.fail(`integer ${word[0]} is too large`);
    return n;
  }

  private string(): string {
    const quote = this.text[this.pos++];
    let out = '';
    while (this.pos < this.text.length) {
      const c = this.text[this.pos++];
      if (c === quote) return out;
      if (c === '\\') {
        const next = this.text[this.pos++];
        out += next === 'n' ? '\n' : next === 't' ? '\t' : next ?? '';
      } else {
        out += c;
      }
    }
    return this.fail('unterminated string');
  }

  /** Items up to `close`, commas between them and an optional trailing comma. */
  private items<T>(close: string, item: () => T): T[] {
    this.pos++;
    const out: T[] = [];
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] === close) {
        this.pos++;
        return out;
      }
      out.push(item());
      this.skipSpace();
      const c = this.text[this.pos];
      if (c === ',') this.pos++;
      else if (c !== close) this.fail(`expected "," or "${close}" at character ${this.pos}`);
    }
  }

  private sequence(close: string): PyValue[] {
    return this.items(close, () => this.value());
  }

  private dict(): Map<string, PyValue> {
    const entries = this.items('}', (): [string, PyValue] => {
      const key = this.value();
      if (typeof key !== 'string') this.fail('dict keys must be strings');
      this.skipSpace();
      if (this.text[this.pos] !== ':') this.fail(`expected ":" at character ${this.pos}`);
      this.pos++;
      return [key, this.value()];
    });
    return new Map(entries);
  }
}

/** The element type a `descr` names; big-endian and unsupported types are refused in words. */
function storedDType(descr: PyValue, fail: (why: string) => never): StoredDType {
  if (typeof descr !== 'string') fail('structured arrays (a list descr) are not supported');
  const match = /^([<>|=])([a-z]\d+)$/.exec(descr);
  const dtype = match ? NPY_DTYPES[match[2]] : undefined;
  if (!match || !dtype) fail(`dtype ${JSON.stringify(descr)} is not supported (QuantLens reads ${SUPPORTED} arrays)`);
  if (match[1] === '>' && ITEM_BYTES[dtype] > 1) {
    fail(`big-endian dtype ${JSON.stringify(descr)} is not supported; save it little-endian, e.g. a.astype('<${match[2]}')`);
  }
  return dtype;
}

export interface NpyHeader {
  dtype: StoredDType;
  shape: number[];
  fortranOrder: boolean;
  /** Byte offset of the first element. */
  dataStart: number;
  /** Bytes the elements take. */
  dataBytes: number;
}

/** Throws the ModelError for a malformed array; `where` names it ("" for a .npy file, `entry "x.npy": ` in .npz). */
function npyFailure(file: string, where: string): (why: string) => never {
  return (why) => {
    throw new ModelError(file, `${where}not a valid NumPy .npy array: ${why}`);
  };
}

/**
 * Parses the header at the start of `bytes` (the whole header: `npyHeaderEnd` of the first 12 bytes says how long it
 * is). `where` names the array in messages ("" for a .npy file, `entry "x.npy": ` in .npz).
 */
export function parseNpyHeader(bytes: Uint8Array, file: string, where = ''): NpyHeader {
  const fail = npyFailure(file, where);
  const headerEnd = npyHeaderEnd(bytes, file, where);
  if (bytes.length < headerEnd) fail(`the header is truncated (${bytes.length} of ${headerEnd} bytes)`);
  const major = bytes[6];
  const text = new TextDecoder(major >= 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(major === 1 ? 10 : 12, headerEnd));
  const header = new LiteralReader(text.trim(), (why) => fail(`header ${why}`)).readAll();
  if (!(header instanceof Map)) return fail('the header is not a dict');
  for (const key of ['descr', 'fortran_order', 'shape']) if (!header.has(key)) fail(`the header has no '${key}'`);

  const dtype = storedDType(header.get('descr') ?? null, fail);
  const fortranOrder = header.get('fortran_order');
  if (typeof fortranOrder !== 'boolean') return fail("'fortran_order' is not True or False");
  const shape = header.get('shape');
  if (!Array.isArray(shape) || !shape.every((d): d is number => typeof d === 'number' && d >= 0)) {
    return fail(`'shape' is not a tuple of non-negative integers`);
  }
  const dataBytes = numElements(shape) * ITEM_BYTES[dtype];
  if (!Number.isSafeInteger(dataBytes)) fail(`shape (${shape.join(', ')}) is too large`);
  return { dtype, shape, fortranOrder, dataStart: headerEnd, dataBytes };
}

/** Where the header ends (the data starts), from the first 12 bytes. */
export function npyHeaderEnd(bytes: Uint8Array, file: string, where = ''): number {
  const fail = npyFailure(file, where);
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) fail('it does not start with \\x93NUMPY');
  const major = bytes[6];
  if (major < 1 || major > 3) fail(`format version ${major}.${bytes[7]} is not supported (1.0, 2.0 and 3.0 are)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (major === 1) return 10 + dv.getUint16(8, true);
  if (bytes.length < 12) fail('the header is truncated');
  const length = dv.getUint32(8, true);
  if (length > MAX_HEADER_BYTES) fail(`header length ${length} is impossible (the limit is ${MAX_HEADER_BYTES})`);
  return 12 + length;
}

/** The array in a whole .npy file (or .npz entry), in C order. */
export function parseNpy(bytes: Uint8Array, file: string, where = ''): StoredArray {
  const header = parseNpyHeader(bytes, file, where);
  return npyArray(header, bytes.subarray(header.dataStart), file, where);
}

/** The array from its header and the bytes after the header; refuses data shorter than the shape needs. */
export function npyArray(header: NpyHeader, data: Uint8Array, file: string, where = ''): StoredArray {
  const { dtype, shape, dataBytes } = header;
  if (data.length < dataBytes) {
    throw new ModelError(
      file,
      `${where}data is truncated: ${NUMPY_NAMES[dtype]} (${shape.join(', ')}) needs ${dataBytes} bytes but ${data.length} follow the header`,
    );
  }
  const values = fromLittleEndian(data, dtype, numElements(shape));
  return { dtype, shape, data: header.fortranOrder ? fortranToC(values, shape) : values };
}
