"""The session's outputs as protobuf: results, speech events, config answers and progress."""

from __future__ import annotations

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.stream.outputs import ConfigAck, Event, EventType, Output, Progress, Result

_EVENT_TYPES = {
    EventType.SPEECH_STARTED: pb.SpeechEvent.SPEECH_STARTED,
    EventType.SPEECH_ENDED: pb.SpeechEvent.SPEECH_ENDED,
}


def result_to_pb(result: Result) -> pb.SpeechResult:
    return pb.SpeechResult(
        utterance_id=result.utterance_id,
        is_final=result.is_final,
        stability=result.stability,
        text=result.text,
        stable_text=result.stable_text,
        words=[
            pb.WordInfo(word=w.word, start_s=w.start_s, end_s=w.end_s, probability=w.probability) for w in result.words
        ],
        confidence=result.confidence,
        language=result.language,
        language_probability=result.language_probability,
        start_s=result.start_s,
        end_s=result.end_s,
        quality=pb.ResultQuality(
            no_speech_prob=result.quality.no_speech_prob,
            avg_logprob=result.quality.avg_logprob,
            compression_ratio=result.quality.compression_ratio,
            temperature=result.quality.temperature,
            flags=[flag.value for flag in result.quality.flags],  # by name: the enum's labels are Flag's values
        ),
        timing=pb.ResultTiming(
            latency_s=result.timing.latency_s,
            endpoint_wait_s=result.timing.endpoint_wait_s,
            queue_wait_s=result.timing.queue_wait_s,
            decode_s=result.timing.decode_s,
            decoded_audio_s=result.timing.decoded_audio_s,
            real_time_factor=result.timing.real_time_factor,
        ),
    )


def output_to_pb(output: Output) -> pb.StreamingTranscribeResponse:
    response = pb.StreamingTranscribeResponse(final_offset_s=output.final_offset_s)
    if isinstance(output, Event):
        response.event.CopyFrom(
            pb.SpeechEvent(type=_EVENT_TYPES[output.type], time_s=output.time_s, utterance_id=output.utterance_id)
        )
    elif isinstance(output, Result):
        response.result.CopyFrom(result_to_pb(output))
    elif isinstance(output, ConfigAck):
        response.config_update.CopyFrom(
            pb.ConfigUpdate(
                outcome=pb.ConfigUpdate.APPLIED if output.applied else pb.ConfigUpdate.REFUSED,
                message=output.message,
                received_at_s=output.received_at_s,
                in_progress_utterance_id=output.in_progress_utterance_id,
            )
        )
    else:
        assert isinstance(output, Progress)
    return response
