"""A stand-in for Orange's TaskState when a test calls a run_* function directly."""


class State:
    def is_interruption_requested(self):
        return False

    def set_status(self, _):
        pass

    def set_progress_value(self, _):
        pass
