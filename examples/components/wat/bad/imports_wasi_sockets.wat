;; imports_wasi_sockets.wat — imports wasi:sockets/tcp@0.2.12 (WASI 0.2.12: what
;; wasmtime-wasi 48 provides and componentize-js 0.23.0 targets), which a
;; capability-free WASI does not grant. The interface is declared with one of
;; its exports (the tcp-socket resource): a subset of the real one, which a
;; linker that had sockets would accept.
;;
;; Hand-written for the runtime's tests (examples/components/README.md): a
;; component the runtime must refuse, naming the import, before any call. Apart
;; from that import it is shaped like the scorer components wit-component
;; builds (it imports the world's sealbox:credit-score/types@0.1.0 interface for
;; its types, as they do) and exports
;; `score: func(applicant) -> result<assessment, string>` of
;; sealbox:credit-score/scorer@0.1.0, which answers every applicant with score
;; 300, band e and no reasons. It never calls the import.
(component
  (import "wasi:sockets/tcp@0.2.12" (instance $tcp
    (export "tcp-socket" (type (sub resource)))))
  (import "sealbox:credit-score/types@0.1.0" (instance $types
    (type $applicant (record
      (field "income" u64)
      (field "debt" u64)
      (field "age" u32)
      (field "late-payments" u32)
      (field "credit-history-months" u32)))
    (export "applicant" (type $applicant' (eq $applicant)))
    (type $band (enum "a" "b" "c" "d" "e"))
    (export "band" (type $band' (eq $band)))
    (type $reason (enum "high-debt-to-income" "late-payments" "short-credit-history" "low-income"))
    (export "reason" (type $reason' (eq $reason)))
    (type $assessment (record
      (field "score" u16)
      (field "band" $band')
      (field "reasons" (list $reason'))))
    (export "assessment" (type (eq $assessment)))))
  (alias export $types "applicant" (type $applicant'))
  (import "applicant" (type $applicant (eq $applicant')))
  (alias export $types "assessment" (type $assessment'))
  (import "assessment" (type $assessment (eq $assessment')))

  (core module $m
    (memory (export "memory") 1)
    ;; The result, canonical ABI layout: tag 0 (ok) at 16; score u16 = 300 at
    ;; 20; band = 4 (e) at 22; reasons list (pointer 0, length 0) at 24.
    (data (i32.const 16) "\00\00\00\00\2c\01\04\00\00\00\00\00\00\00\00\00")
    (func (export "score") (param i64 i64 i32 i32 i32) (result i32)
      i32.const 16))
  (core instance $i (instantiate $m))
  (alias core export $i "memory" (core memory $memory))
  (func $score (param "applicant" $applicant) (result (result $assessment (error string)))
    (canon lift (core func $i "score") (memory $memory)))
  (export "score" (func $score))
)
