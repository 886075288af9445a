;; Hostile WASM model: mv_input_len declares a sample of 16,777,216 values, far beyond what it computes. Expected under
;; modelvet: refused as an unsupported shape (a medium finding) before any probe sizes its buffers
;; from the declared shape; modelvet neither aborts nor panics, and writes its report.
(module
  (memory (export "memory") 1)
  (func (export "mv_alloc") (param $n i32) (result i32) (i32.const 1024))
  (func (export "mv_input_len") (result i32) (i32.const 16777216))
  (func (export "mv_output_len") (result i32) (i32.const 10))
  (func (export "mv_infer") (param $in i32) (param $n i32) (param $out i32) (result i32)
    (i32.const 0))
)
