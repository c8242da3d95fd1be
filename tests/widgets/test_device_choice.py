"""The device choice of Image Embedder and Trainer on the computers Orange users have
(simulated in core.devices), and a workflow saved with a GPU opened on a
computer without one: Automatic, with a warning; the workflow keeps asking for the GPU."""
from unittest import mock

from Orange.widgets.tests.base import WidgetTest

from orangecontrib.deepimage.core import devices
from orangecontrib.deepimage.embedder_job import LOCAL
from orangecontrib.deepimage.widgets.owimageembedder import OWImageEmbedder
from orangecontrib.deepimage.widgets.owtrainer import OWTrainer

WIDGETS = (OWImageEmbedder, OWTrainer)


def computer(cuda=False, mps=False):
    """Patches for core.devices alone: a CUDA build with a GPU, or an Apple Silicon Mac.

    torch, sys.platform and platform.machine stay as they are (tests/core/
    test_device_support.py simulates those): Qt, Orange and every other thread running
    while a widget is built see this computer, not a simulated one."""
    return [mock.patch.object(devices, "cuda_usable", lambda: cuda),
            mock.patch.object(devices, "mps_usable", lambda: mps)]


class TestDeviceChoice(WidgetTest):
    def create(self, cls, device, **simulated):
        patches = computer(**simulated)
        for patch in patches:
            patch.start()
        try:
            return self.create_widget(cls, stored_settings={"device": device})
        finally:
            for patch in reversed(patches):
                patch.stop()

    @staticmethod
    def enabled(widget):
        combo = widget.device_combo
        return [key for key, i in zip(combo.keys(), range(combo.count()))
                if combo.model().item(i).isEnabled()]

    @staticmethod
    def run_device(widget):
        """The device the widget's run would use."""
        if isinstance(widget, OWTrainer):
            return widget.create_learner().config().device
        choice = widget.current_choice()
        assert choice.where == LOCAL
        return choice.device

    def test_gpu_choices_only_where_they_work(self):
        for cls in WIDGETS:
            self.assertEqual(self.enabled(self.create(cls, "auto")), ["auto", "cpu"])
            self.assertEqual(self.enabled(self.create(cls, "auto", cuda=True)),
                             ["auto", "cpu", "cuda"])
            self.assertEqual(self.enabled(self.create(cls, "auto", mps=True)),
                             ["auto", "cpu", "mps"])
            w = self.create(cls, "auto")
            mps = w.device_combo.model().item(w.device_combo.keys().index("mps"))
            self.assertIn("Apple Silicon", mps.toolTip())

    def test_saved_gpu_on_a_computer_without_one_runs_automatically_with_a_warning(self):
        for cls in WIDGETS:
            for saved, label in (("cuda", "NVIDIA GPU (CUDA)"), ("mps", "Apple GPU (MPS)")):
                w = self.create(cls, saved)
                self.assertTrue(w.Warning.device_missing.is_shown(), cls.__name__)
                self.assertIn(label, str(w.Warning.device_missing))
                self.assertEqual(w.device_combo.currentText(), "Automatic")
                self.assertEqual(self.run_device(w), "auto")
                # saved again here, the workflow still asks for the GPU elsewhere
                self.assertEqual(w.settingsHandler.pack_data(w)["device"], saved)
                w.device_combo.setCurrentIndex(1)  # the user picks CPU: no warning
                w.device_combo.activated.emit(1)
                self.assertFalse(w.Warning.device_missing.is_shown())
                self.assertEqual(w.device, "cpu")
                self.assertEqual(self.run_device(w), "cpu")

    def test_saved_gpu_where_there_is_one(self):
        for cls in WIDGETS:
            w = self.create(cls, "cuda", cuda=True)
            self.assertFalse(w.Warning.device_missing.is_shown())
            self.assertEqual(w.device_combo.currentText(), "NVIDIA GPU (CUDA)")
            self.assertEqual(self.run_device(w), "cuda")
            w = self.create(cls, "mps", mps=True)
            self.assertFalse(w.Warning.device_missing.is_shown())
            self.assertEqual(self.run_device(w), "mps")

    def test_trainer_keeps_the_warning_when_it_trains(self):
        w = self.create(OWTrainer, "cuda")
        w.commit.now()
        self.assertTrue(w.Warning.device_missing.is_shown())
