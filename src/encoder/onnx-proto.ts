/**
 * A small writer for the ONNX protobuf format: the messages and fields a converted model needs
 * (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto), encoded by hand
 * so that conversion needs neither Python nor a protobuf library. Field numbers follow onnx.proto.
 */

const WIRE_VARINT = 0;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

/** Protobuf wire encoding into a growable buffer. */
class Writer {
  private chunks: Uint8Array[] = [];
  private scratch: number[] = [];

  private flushScratch(): void {
    if (this.scratch.length) {
      this.chunks.push(Uint8Array.from(this.scratch));
      this.scratch = [];
    }
  }

  private varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.scratch.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.scratch.push(Number(v));
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.scratch.push(...b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_BYTES);
    this.varint(value.length);
    this.flushScratch();
    this.chunks.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    this.flushScratch();
    const total = this.chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(total);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }
}

export const DataType = { FLOAT: 1, INT8: 3, INT32: 6, INT64: 7 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

export interface Tensor {
  name: string;
  dims: number[];
  type: DataTypeCode;
  /** Little-endian element bytes. */
  data: Float32Array | Int8Array | Int32Array | BigInt64Array;
}

export type AttributeValue = number | number[] | { float: number } | { floats: number[] } | { tensor: Tensor };

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  attributes?: Record<string, AttributeValue>;
}

export interface ValueInfo {
  name: string;
  type: DataTypeCode;
  /** Numbers are fixed sizes, strings symbolic ones (e.g. 'batch'). */
  shape: (number | string)[];
}

export interface Graph {
  name: string;
  nodes: Node[];
  initializers: Tensor[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export interface ModelOptions {
  opset: number;
  producer: string;
  producerVersion: string;
  docString?: string;
  metadata?: Record<string, string>;
}

function writeTensor(w: Writer, t: Tensor): void {
  for (const d of t.dims) w.int(1, d); // dims
  w.int(2, t.type); // data_type
  w.string(8, t.name); // name
  w.bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)); // raw_data
}

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_TENSOR = 4;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

function writeAttribute(w: Writer, name: string, value: AttributeValue): void {
  w.string(1, name);
  if (typeof value === 'number') {
    w.int(20, ATTR_INT).int(3, value);
  } else if (Array.isArray(value)) {
    w.int(20, ATTR_INTS);
    for (const v of value) w.int(8, v);
  } else if ('float' in value) {
    w.int(20, ATTR_FLOAT).float(2, value.float);
  } else if ('floats' in value) {
    w.int(20, ATTR_FLOATS);
    for (const v of value.floats) w.float(7, v);
  } else {
    w.int(20, ATTR_TENSOR).message(5, (t) => writeTensor(t, value.tensor));
  }
}

function writeValueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.type);
      tensor.message(2, (shape) => {
        for (const d of v.shape) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

/** Serialises a model: IR version 8, one opset of the default domain. */
export function encodeModel(graph: Graph, options: ModelOptions): Uint8Array {
  const w = new Writer();
  w.int(1, 8); // ir_version
  w.string(2, options.producer);
  w.string(3, options.producerVersion);
  if (options.docString) w.string(6, options.docString);
  w.message(7, (g) => {
    for (const node of graph.nodes)
      g.message(1, (n) => {
        for (const i of node.inputs) n.string(1, i);
        for (const o of node.outputs) n.string(2, o);
        if (node.name) n.string(3, node.name);
        n.string(4, node.op);
        for (const [key, value] of Object.entries(node.attributes ?? {})) n.message(5, (a) => writeAttribute(a, key, value));
      });
    g.string(2, graph.name);
    for (const t of graph.initializers) g.message(5, (m) => writeTensor(m, t));
    for (const v of graph.inputs) g.message(11, (m) => writeValueInfo(m, v));
    for (const v of graph.outputs) g.message(12, (m) => writeValueInfo(m, v));
  });
  w.message(8, (o) => o.string(1, '').int(2, options.opset)); // opset_import
  for (const [key, value] of Object.entries(options.metadata ?? {})) w.message(14, (m) => m.string(1, key).string(2, value));
  return w.finish();
}
