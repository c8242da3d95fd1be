"""The path a user builds: Import Images -> Image Embedder -> Distances ->
Hierarchical Clustering -> Image Viewer, with a selection flowing through to the end."""
import shutil
import tempfile

import numpy as np
from Orange.widgets.tests.base import WidgetTest
from Orange.widgets.unsupervised.owdistances import OWDistances
from Orange.widgets.unsupervised.owhierarchicalclustering import OWHierarchicalClustering

from orangecontrib.deepimage.widgets.owimageembedder import OWImageEmbedder
from orangecontrib.deepimage.widgets.owimageviewer import OWImageViewer
from orangecontrib.deepimage.widgets.owimportimages import OWImportImages

from test_owimageembedder import make_photos

TIMEOUT = 60000


class TestClusteringPath(WidgetTest):
    def setUp(self):
        self.folder = make_photos(tempfile.mkdtemp(prefix="clustering-path-"), per_class=4)
        self.addCleanup(shutil.rmtree, self.folder, True)

    def test_selection_flows_from_dendrogram_to_viewer(self):
        importer = self.create_widget(OWImportImages)
        importer.set_folder(self.folder)
        self.wait_until_finished(importer, timeout=TIMEOUT)
        images = self.get_output(importer.Outputs.data, widget=importer)
        self.assertEqual(len(images), 8)  # the two broken files are not images

        embedder = self.create_widget(OWImageEmbedder)
        self.send_signal(embedder.Inputs.images, images, widget=embedder)
        self.wait_until_finished(embedder, timeout=TIMEOUT)
        embeddings = self.get_output(embedder.Outputs.embeddings, widget=embedder)
        self.assertEqual(embeddings.X.shape, (8, 512))

        distances_widget = self.create_widget(OWDistances)
        self.send_signal(distances_widget.Inputs.data, embeddings, widget=distances_widget)
        self.wait_until_finished(distances_widget, timeout=TIMEOUT)
        distances = self.get_output(distances_widget.Outputs.distances,
                                    widget=distances_widget)
        self.assertEqual(distances.shape, (8, 8))

        clustering = self.create_widget(OWHierarchicalClustering)
        self.send_signal(clustering.Inputs.distances, distances, widget=clustering)
        items = clustering.dendrogram._items
        # the smallest branch with more than one leaf: a real cluster, not everything
        def leaves(item):
            return item.node.value.last - item.node.value.first

        branch = min((item for item in items.values() if 1 < leaves(item) < 8), key=leaves)
        clustering.dendrogram.set_selected_items([branch])
        selected = self.get_output(clustering.Outputs.selected_data, widget=clustering)
        self.assertEqual(len(selected), leaves(branch))
        self.assertTrue(set(selected.ids) <= set(images.ids))

        viewer = self.create_widget(OWImageViewer)
        self.send_signal(viewer.Inputs.data, selected, widget=viewer)
        self.assertEqual(len(viewer.paths), len(selected))
        viewer._select_rows([0])
        chosen = self.get_output(viewer.Outputs.selected_data, widget=viewer)
        self.assertEqual(len(chosen), 1)
        # the image picked at the end is the one imported at the start: ids survive the path
        row = list(images.ids).index(chosen.ids[0])
        self.assertEqual(chosen.get_column("image")[0], images.get_column("image")[row])
        np.testing.assert_array_equal(
            chosen.X[0, -512:], embeddings.X[list(embeddings.ids).index(chosen.ids[0])])
