-- wrk's side of the load-client check (docs/BENCHMARKS.md): the POS payment that
-- `wallet-loadgen payments --baseline` sends to minimal-server, for
--   wrk -t2 -c64 -d15s --latency -s loadgen/wrk/payment.lua http://127.0.0.1:PORT
-- minimal-server checks the Bearer header, the Idempotency-Key and that the body is JSON.
local sent = 0

request = function()
    sent = sent + 1
    local headers = {
        ["Authorization"] = "Bearer baseline-token",
        ["Content-Type"] = "application/json",
        ["Idempotency-Key"] = "wrk-pay-" .. sent,
    }
    local body = string.format('{"payment_code":"BASELINE%012d","amount":"1000"}', sent)
    return wrk.format("POST", "/v1/payments", headers, body)
end
