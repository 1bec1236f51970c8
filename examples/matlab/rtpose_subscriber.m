% rtpose_subscriber.m - receive rtpose's pose stream in MATLAB (JSON payloads).
%
% 1. Start rtpose with JSON payloads (MATLAB has no MessagePack decoder built in):
%        rtpose run --source camera:0 --publish tcp://127.0.0.1:5555 --publish-format json
% 2. Get JeroMQ, the pure-Java ZeroMQ (https://github.com/zeromq/jeromq, Mozilla Public
%    License 2.0): download jeromq-0.6.0.jar from Maven Central (group org.zeromq, artifact
%    jeromq) and set JEROMQ_JAR below to its path. Nothing to compile; MATLAB's own Java runs it.
% 3. Run this script (MATLAB R2016b or later, for jsondecode and local functions in scripts).
%
% Message layout: docs/protocol.md, sections 3 (header), 4 (pose) and 8 (JSON payloads).
% jsondecode turns JSON numbers into doubles: integers such as t_capture_ns are exact up to
% 2^53 ns (104 days of uptime); positions are float32 values, exact as doubles.

ADDRESS = 'tcp://127.0.0.1:5555';
JEROMQ_JAR = 'jeromq-0.6.0.jar';
N_POSES = 300;          % stop after this many pose messages
TIMEOUT_MS = 5000;      % give up when nothing arrives for this long

javaaddpath(JEROMQ_JAR);
ctx = org.zeromq.ZContext();
cleanup = onCleanup(@() ctx.close());
sub = ctx.createSocket(org.zeromq.SocketType.SUB);
sub.setReceiveTimeOut(TIMEOUT_MS);
sub.subscribe('header');   % needed: it names the bodyparts (sent at least once a second)
sub.subscribe('pose');
sub.connect(ADDRESS);

headers = containers.Map('KeyType', 'double', 'ValueType', 'any');  % hdr id -> header
n = 0;
while n < N_POSES
    topic = sub.recvStr();                 % frame 1: the topic
    if isempty(topic)
        error('rtpose:timeout', ['nothing from %s within %d ms: is rtpose running with ' ...
              '--publish %s --publish-format json?'], ADDRESS, TIMEOUT_MS, ADDRESS);
    end
    topic = char(topic);
    payload = char(sub.recvStr());         % frame 2: the JSON payload
    msg = jsondecode(payload);
    if msg.v ~= 1
        error('rtpose:version', 'rtpose stream version %d; this script reads version 1', msg.v);
    end
    switch topic                           % ZeroMQ filters by prefix: compare the topic exactly
        case 'header'
            headers(msg.hdr) = msg;
        case 'pose'
            if ~isKey(headers, msg.hdr)
                continue                   % its header has not arrived yet (it will within 1 s)
            end
            header = headers(msg.hdr);
            stream = header.streams(msg.stream + 1);          % streams are numbered from 0
            bodyparts = stream.bodyparts;                      % cell array of names
            pose = reshape(numbers(msg.pose), 3, [])';         % K x 3: x, y, likelihood (pixels)
            predicted = reshape(numbers(msg.pred), 3, [])';    % Kalman prediction for t_target_ns
            in_rtpose_ms = (msg.t_send_ns - msg.t_capture_ns) / 1e6;
            fprintf('frame %d  %s at (%.1f, %.1f) p=%.3f  capture->send %.2f ms\n', msg.frame, ...
                    bodyparts{1}, pose(1, 1), pose(1, 2), pose(1, 3), in_rtpose_ms);
            n = n + 1;
        otherwise
            % a topic added by a later rtpose version: ignore it
    end
end

function values = numbers(field)
% A JSON array of numbers in which rtpose writes null for NaN: jsondecode already gives NaN for
% a null among numbers, but a cell array when every element is null.
if iscell(field)
    values = nan(numel(field), 1);
else
    values = double(field(:));
end
end
